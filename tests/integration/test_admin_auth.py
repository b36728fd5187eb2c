"""Who may call /admin: client-credentials access tokens with scope idp:admin, and nothing else."""

from __future__ import annotations

import base64
import secrets

import orjson
import pytest

from idp.clients.model import ClientValidationError
from idp.crypto import b64url
from tests.adminkit import admin_client, check_response, mint
from tests.pagekit import make_client, make_user, sign_in

ISSUER = "https://idp.test"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def refused(client, headers: dict[str, str], status: int = 401, **kw) -> dict:
    r = check_response(await client.get("/admin/users", headers=headers, **kw))
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith('Bearer realm="idp-admin"')
    assert r.headers["cache-control"] == "no-store"
    return r.json()


async def test_a_client_credentials_token_with_idp_admin_is_accepted(client, container) -> None:
    ops = admin_client(container)
    r = check_response(await client.get("/admin/users", headers=bearer(mint(container, ops))))
    assert r.status_code == 200
    assert r.json() == {"users": []}


async def test_no_token_is_refused_with_a_problem_document(client) -> None:
    body = await refused(client, {})
    assert body["status"] == 401 and body["code"] == "invalid_token" and body["type"] == "about:blank"


async def test_a_signed_in_session_cookie_is_not_enough(client, container) -> None:
    make_user(container)
    assert (await sign_in(client)).status_code == 303
    assert client.cookies  # the browser session exists
    await refused(client, {})


async def test_the_token_is_not_accepted_in_the_query_string(client, container) -> None:
    await refused(client, {}, params={"access_token": mint(container, admin_client(container))})


async def test_client_secret_basic_is_not_accepted(client, container) -> None:
    ops, secret = container.clients.create(name="ops", kind="service", scope="idp:admin")
    basic = base64.b64encode(f"{ops.client_id}:{secret}".encode()).decode()
    await refused(client, {"authorization": f"Basic {basic}"})


@pytest.mark.parametrize(
    "change",
    [
        {"aud": f"{ISSUER}/api"},  # RFC 8707: a token for another API
        {"aud": ISSUER},
        {"iss": "https://evil.test"},
        {"ttl": -120},  # expired beyond the leeway
        {"typ": "JWT"},  # RFC 9068 §4: typ must be at+jwt (an ID token is not an access token)
        {"typ": "logout+jwt"},
    ],
    ids=["other-audience", "issuer-audience", "wrong-issuer", "expired", "typ-JWT", "typ-logout"],
)
async def test_tokens_that_do_not_verify_as_admin_access_tokens_are_refused(client, container, change) -> None:
    ops = admin_client(container)
    await refused(client, bearer(mint(container, ops, **change)))


async def test_a_forged_signature_and_alg_none_are_refused(client, container) -> None:
    token = mint(container, admin_client(container))
    head, payload, sig = token.split(".")
    await refused(client, bearer(f"{head}.{payload}.{sig[:-4]}AAAA"))
    none_head = b64url(
        orjson.dumps(
            {"alg": "none", "typ": "at+jwt", "kid": orjson.loads(base64.urlsafe_b64decode(head + "=="))["kid"]}
        )
    )
    await refused(client, bearer(f"{none_head}.{payload}."))


async def test_a_token_without_idp_admin_scope_gets_403(client, container) -> None:
    ops = admin_client(container, scope="idp:admin api:read")
    body = await refused(client, bearer(mint(container, ops, scope="api:read")), status=403)
    assert body["code"] == "insufficient_scope"


async def test_a_token_issued_to_a_person_is_refused_even_with_the_scope(client, container) -> None:
    ops = admin_client(container)
    user = make_user(container)
    body = await refused(client, bearer(mint(container, ops, sub=user.id)), status=403)
    assert body["code"] == "insufficient_scope"


async def test_disabling_the_client_kills_its_admin_tokens_at_once(client, container) -> None:
    ops = admin_client(container)
    token = mint(container, ops)
    container.client_admin.set_disabled(ops.client_id, True, actor="test")
    await refused(client, bearer(token))


async def test_removing_idp_admin_from_the_registration_kills_its_tokens(client, container) -> None:
    ops = admin_client(container, scope="idp:admin api:read")
    token = mint(container, ops)
    with pytest.raises(ClientValidationError):  # ISSUER/admin stays reserved to idp:admin clients
        container.clients.update(ops.client_id, scope="api:read")
    container.clients.update(ops.client_id, scope="api:read", audience="https://api.example")
    await refused(client, bearer(token))


async def test_a_deleted_client_has_no_admin_access(client, container) -> None:
    ops = admin_client(container)
    token = mint(container, ops)
    container.clients.delete(ops.client_id)
    await refused(client, bearer(token))


async def test_only_service_clients_may_hold_admin_tokens(client, container) -> None:
    web = make_client(container, scope="openid idp:admin")
    await refused(client, bearer(mint(container, web)))


@pytest.mark.parametrize("kind", ["jti", "client"])
async def test_deny_listed_admin_tokens_are_refused(client, container, kind) -> None:
    ops = admin_client(container)
    token = mint(container, ops)
    claims = orjson.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    value = claims["jti"] if kind == "jti" else ops.client_id
    container.clock.advance(1)
    container.denylist.deny(kind, value, reason="test", actor="test", until=claims["exp"])
    await refused(client, bearer(token))
    container.clock.advance(1)
    if kind == "client":  # a cut-off: tokens issued afterwards work again
        assert (await client.get("/admin/users", headers=bearer(mint(container, ops)))).status_code == 200


async def test_a_token_signed_by_a_compromised_key_is_refused(client, container) -> None:
    ops = admin_client(container)
    token = mint(container, ops)
    kid = orjson.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["kid"]
    fresh = bearer(mint(container, ops))
    r = await client.post(f"/admin/keys/{kid}/revoke", headers=fresh)
    assert r.status_code == 200 and r.json()["state"] == "compromised"
    await refused(client, bearer(token))


async def test_random_garbage_is_a_401_never_a_500(client) -> None:
    for junk in ("x", "a.b.c", "." * 3, secrets.token_urlsafe(3000), "Bearer", "é"):
        r = await client.get("/admin/users", headers={"authorization": f"Bearer {junk}".encode()})
        assert r.status_code == 401


async def test_a_token_from_the_token_endpoint_opens_the_admin_api(client, container) -> None:
    ops, secret = container.clients.create(
        name="ops", kind="service", scope="idp:admin", audience="https://idp.test/admin"
    )
    basic = base64.b64encode(f"{ops.client_id}:{secret}".encode()).decode()
    r = await client.post(
        "/token", data={"grant_type": "client_credentials"}, headers={"authorization": f"Basic {basic}"}
    )
    assert r.status_code == 200, r.text
    r = check_response(await client.get("/admin/clients", headers=bearer(r.json()["access_token"])))
    assert r.status_code == 200 and ops.client_id in [c["client_id"] for c in r.json()["clients"]]
