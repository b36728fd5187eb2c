"""A full session of traffic at DEBUG level: no token, code, secret, password or cookie reaches the logs.

Every secret the flows issue or receive is collected and searched for in the captured log
output (the production JSON formatter, every logger), together with the metrics the
same traffic produced.
"""

from __future__ import annotations

import pytest

from idp.interaction import SESSION_COOKIE
from tests.adminkit import admin_client, mint
from tests.oauthkit import (
    PASSWORD,
    basic,
    exchange,
    get_code,
    make_user,
    native_client,
    refresh,
    service_client,
    web_client,
)
from tests.obskit import capture_logs, sample
from tests.pagekit import SAME_ORIGIN, field, login_form

METRICS_TOKEN = "metrics-token-never-logged-0123456789"


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"metrics_token": METRICS_TOKEN}


def jwt_parts(token: str) -> list[str]:
    return [token, token.rsplit(".", 1)[-1]]  # the whole token and its signature


async def test_a_full_session_of_traffic_leaves_no_secret_in_the_logs(client, container) -> None:
    c = container
    secrets_seen: list[str] = [PASSWORD, METRICS_TOKEN]
    user = make_user(c)
    web, web_secret = web_client(c)
    native = native_client(c)
    svc, svc_secret = service_client(c, auth_method="client_secret_post")
    ops = admin_client(c)
    admin = {"authorization": f"Bearer {mint(c, ops)}"}
    secrets_seen += [web_secret, svc_secret, admin["authorization"].split()[1]]

    with capture_logs() as logs:
        # The hosted login form: password and CSRF token in the body, the session cookie back.
        page = await login_form(client)
        csrf = field(page.text, "csrf")
        await client.post("/login", data={"csrf": csrf, "username": "alice", "password": "wrong password"},
                          headers=SAME_ORIGIN)  # fmt: skip
        page = await login_form(client)
        csrf = field(page.text, "csrf")
        r = await client.post("/login", data={"csrf": csrf, "username": "alice", "password": PASSWORD},
                              headers=SAME_ORIGIN)  # fmt: skip
        assert r.status_code == 303
        secrets_seen += [csrf, client.cookies[SESSION_COOKIE]]

        # A confidential web app: code + PKCE, refresh rotation, reuse detection, userinfo.
        code, verifier, _ = await get_code(client, web, scope="openid profile offline_access")
        r = await exchange(client, web, web_secret, code, verifier)
        assert r.status_code == 200, r.text
        tokens = r.json()
        secrets_seen += [code, verifier, tokens["refresh_token"], *jwt_parts(tokens["access_token"]),
                         *jwt_parts(tokens["id_token"])]  # fmt: skip
        rotated = (await refresh(client, web, web_secret, tokens["refresh_token"])).json()
        secrets_seen += [rotated["refresh_token"], *jwt_parts(rotated["access_token"])]
        c.clock.advance(c.settings.refresh_grace_seconds + 1)
        assert (await refresh(client, web, web_secret, tokens["refresh_token"])).status_code == 400  # reuse
        assert (await exchange(client, web, web_secret, code, verifier)).status_code == 400  # code replay
        await client.get("/userinfo", headers={"authorization": f"Bearer {rotated['access_token']}"})

        # A native app: public client, client_id in the body.
        code, verifier, _ = await get_code(client, native)
        r = await exchange(client, native, None, code, verifier)
        assert r.status_code == 200, r.text
        secrets_seen += [code, verifier, *jwt_parts(r.json()["access_token"])]

        # An integrator: client_secret_post, then a wrong secret.
        r = await client.post("/token", data={"grant_type": "client_credentials", "client_id": svc.client_id,
                                              "client_secret": svc_secret})  # fmt: skip
        assert r.status_code == 200, r.text
        secrets_seen += jwt_parts(r.json()["access_token"])
        await client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(svc.client_id, "nope-x"))

        # Admin: a rotated secret and a generated password come back once.
        r = await client.post(f"/admin/clients/{svc.client_id}/secret", headers=admin)
        secrets_seen.append(r.json()["client_secret"])
        r = await client.post("/admin/users", json={"username": "bob"}, headers=admin)
        secrets_seen.append(r.json()["password"])
        r = await client.post(f"/admin/users/{user.id}/password", json={"password": "another passphrase 42"},
                              headers=admin)  # fmt: skip
        secrets_seen.append("another passphrase 42")

        # Logout carries an ID token in the query string.
        await client.get("/logout", params={"id_token_hint": tokens["id_token"], "client_id": web.client_id})
        metrics = await client.get("/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"})

    text = logs.text
    assert len(logs.access()) >= 18  # the traffic was logged...
    leaked = [s for s in secrets_seen if s and s in text]
    assert not leaked, f"{len(leaked)} secret(s) found in the logs"  # ...but none of its secrets

    m = metrics.text
    assert sample(m, "idp_tokens_issued_total", grant_type="authorization_code", client_type="web") == 1
    assert sample(m, "idp_tokens_issued_total", grant_type="authorization_code", client_type="native") == 1
    assert sample(m, "idp_tokens_issued_total", grant_type="refresh_token", client_type="web") == 1
    assert sample(m, "idp_tokens_issued_total", grant_type="client_credentials", client_type="service") == 1
    assert sample(m, "idp_refresh_reuse_detected_total") == 1
    assert sample(m, "idp_revocations_total", kind="grant") >= 2
    assert sample(m, "idp_logins_total", result="failure") == 1
    assert sample(m, "idp_http_requests_total", endpoint="/token", status="400") >= 2
