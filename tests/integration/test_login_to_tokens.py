"""The hosted pages with the real authorization and token endpoints: what ending a session does to tokens.

A refresh token held by a client dies after "sign out everywhere", a password change,
logout (unless offline_access) and "revoke access"; live access tokens are deny-listed.
"""

from __future__ import annotations

import pytest

from idp.events import UserDisabled
from idp.tokens import jwt
from tests.oauthkit import auth_params, exchange, pkce_pair, query, refresh
from tests.pagekit import (
    ISSUER,
    PASSWORD,
    SAME_ORIGIN,
    account_csrf,
    field,
    make_user,
    session_value,
    sign_in,
)


@pytest.fixture
def alice(container):
    return make_user(container)


@pytest.fixture
def rp(container):
    client, secret = container.clients.create(
        name="Photo Book", kind="web", redirect_uris=["https://rp.example/cb"],
        post_logout_redirect_uris=["https://rp.example/bye"], scope="openid profile email offline_access",
    )  # fmt: skip
    return client, secret


def path(location: str) -> str:
    return location.removeprefix(ISSUER)


async def authorize(client, rp_client, *, consent: str = "allow", **extra):
    """Drive /authorize through the hosted pages like a browser; returns the final redirect's query."""
    verifier, challenge = pkce_pair()
    r = await client.get("/authorize", params=auth_params(rp_client, challenge, **extra))
    for _ in range(6):
        assert r.status_code in (302, 303), (r.status_code, r.text[:300])
        location = r.headers["location"]
        if location.startswith("https://rp.example/"):
            return query(location), verifier
        if path(location).startswith("/login?"):
            interaction = query(location)["interaction"]
            r = await sign_in(client, interaction=interaction)
        elif path(location).startswith("/consent?"):
            page = await client.get(path(location))
            assert rp_client.name in page.text
            r = await client.post(
                "/consent",
                data={"interaction": field(page.text, "interaction"), "csrf": field(page.text, "csrf"),
                      "decision": consent},
                headers=SAME_ORIGIN,
            )  # fmt: skip
        else:
            r = await client.get(path(location))
    raise AssertionError("too many redirects")


async def tokens(client, rp, scope="openid profile offline_access", **extra):
    rp_client, secret = rp
    q, verifier = await authorize(client, rp_client, scope=scope, **extra)
    assert "code" in q, q
    assert q["iss"] == ISSUER
    r = await exchange(client, rp_client, secret, q["code"], verifier)
    assert r.status_code == 200, r.text
    return r.json()


def at_claims(container, token):
    return jwt.verify(container.keyring, token, typ="at+jwt", issuer=ISSUER, audience=None, now=container.clock.now())[
        1
    ]


async def refresh_works(client, rp, token) -> bool:
    r = await refresh(client, rp[0], rp[1], token)
    assert r.status_code in (200, 400), r.text
    return r.status_code == 200


async def test_login_consent_code_flow(client, container, alice, rp):
    got = await tokens(client, rp)
    assert "refresh_token" in got and "id_token" in got
    assert container.consents.covers(alice.id, rp[0].client_id, ["openid", "profile", "offline_access"])
    # consent remembered: the second authorization goes straight through
    rp_client, _ = rp
    _, challenge = pkce_pair()
    r = await client.get("/authorize", params=auth_params(rp_client, challenge, scope="openid profile"))
    assert r.status_code == 302 and "code" in query(r.headers["location"])


async def test_deny_sends_access_denied_to_the_client(client, container, alice, rp):
    q, _ = await authorize(client, rp[0], consent="deny", state="s1")
    assert q["error"] == "access_denied" and q["state"] == "s1" and q["iss"] == ISSUER


async def test_prompt_login_shows_the_form_and_updates_auth_time(client, container, alice, rp):
    first = await tokens(client, rp, scope="openid")
    container.clock.advance(3600)
    second = await tokens(client, rp, scope="openid", prompt="login")
    claims = [
        jwt.verify(container.keyring, t["id_token"], typ="JWT", issuer=ISSUER, audience=rp[0].client_id,
                   now=container.clock.now(), allow_expired=True)[1]
        for t in (first, second)
    ]  # fmt: skip
    assert claims[1]["auth_time"] == claims[0]["auth_time"] + 3600
    assert claims[1]["sid"] == claims[0]["sid"]


async def test_sign_out_everywhere_kills_refresh_and_access_tokens(client, container, alice, rp):
    got = await tokens(client, rp)
    claims = at_claims(container, got["access_token"])
    assert not container.denylist.is_denied(claims)
    token = await account_csrf(client)
    container.clock.advance(1)
    r = await client.post("/account/sessions/end-all", data={"csrf": token}, headers=SAME_ORIGIN)
    assert r.status_code == 303
    assert not await refresh_works(client, rp, got["refresh_token"])  # even offline_access
    assert container.denylist.is_denied(claims)  # the live access token is dead too


async def test_change_password_kills_refresh_tokens(client, container, alice, rp):
    got = await tokens(client, rp)
    token = await account_csrf(client)
    r = await client.post(
        "/account/password",
        data={"csrf": token, "current_password": PASSWORD, "new_password": "another long passphrase",
              "confirm_password": "another long passphrase"},
        headers=SAME_ORIGIN,
    )  # fmt: skip
    assert r.status_code == 303
    assert not await refresh_works(client, rp, got["refresh_token"])


async def test_logout_revokes_refresh_tokens_of_the_session(client, container, alice):
    first_party, secret = container.clients.create(
        name="Own App", kind="web", redirect_uris=["https://rp.example/cb"], first_party=True,
        post_logout_redirect_uris=["https://rp.example/bye"], scope="openid profile offline_access",
    )  # fmt: skip
    rp = (first_party, secret)
    online = await tokens(client, rp, scope="openid profile")  # first-party: a session-bound refresh token
    offline = await tokens(client, rp, scope="openid offline_access")
    container.clock.advance(1)
    r = await client.get(
        "/logout", params={"id_token_hint": online["id_token"], "post_logout_redirect_uri": "https://rp.example/bye"}
    )
    assert r.status_code == 303
    assert not await refresh_works(client, rp, online["refresh_token"])
    assert await refresh_works(client, rp, offline["refresh_token"])  # IDP_LOGOUT_REVOKES_OFFLINE=false
    assert container.denylist.is_denied(at_claims(container, online["access_token"]))


async def test_revoke_access_kills_that_apps_refresh_tokens_only(client, container, alice, rp):
    other = container.clients.create(
        name="Calendar", kind="web", redirect_uris=["https://rp.example/cb"], scope="openid offline_access",
    )  # fmt: skip
    mine = await tokens(client, rp)
    theirs = await tokens(client, other, scope="openid offline_access")
    page = (await client.get("/account")).text
    assert "Photo Book" in page and "Calendar" in page
    r = await client.post(
        "/account/apps/revoke", data={"csrf": await account_csrf(client), "client_id": rp[0].client_id},
        headers=SAME_ORIGIN,
    )  # fmt: skip
    assert r.status_code == 303
    assert not await refresh_works(client, rp, mine["refresh_token"])
    assert await refresh_works(client, other, theirs["refresh_token"])
    assert not container.consents.covers(alice.id, rp[0].client_id, ["openid"])


async def test_disabled_user_loses_refresh_tokens(client, container, alice, rp):
    got = await tokens(client, rp)
    container.events.publish(UserDisabled(alice.id, actor="admin"))
    assert not await refresh_works(client, rp, got["refresh_token"])
    assert session_value(client) and container.login_sessions.from_cookie(session_value(client)) is None


async def test_prompt_none_without_session_or_consent(client, container, alice, rp):
    _, challenge = pkce_pair()
    r = await client.get("/authorize", params=auth_params(rp[0], challenge, prompt="none"))
    assert query(r.headers["location"])["error"] == "login_required"
    await sign_in(client)
    r = await client.get("/authorize", params=auth_params(rp[0], challenge, prompt="none"))
    assert query(r.headers["location"])["error"] == "consent_required"
