"""CSRF: synchronizer token + Origin/Referer check on every POST; missing or wrong -> 400 page, nothing changed."""

from __future__ import annotations

import pytest

from idp.interaction import SESSION_COOKIE
from tests.pagekit import (
    ISSUER,
    PASSWORD,
    SAME_ORIGIN,
    account_csrf,
    field,
    login_form,
    make_client,
    make_user,
    pending,
    session_value,
    sign_in,
)

EVIL = {"origin": "https://evil.example"}


@pytest.fixture
def alice(container):
    return make_user(container)


# -- login form (pre-session cookie) ------------------------------------------------------------
async def test_login_without_token_is_refused(client, container, alice):
    await login_form(client)
    r = await client.post("/login", data={"username": "alice", "password": PASSWORD}, headers=SAME_ORIGIN)
    assert r.status_code == 400
    assert SESSION_COOKIE not in client.cookies


async def test_login_with_wrong_token_is_refused(client, container, alice):
    page = await login_form(client)
    token = field(page.text, "csrf")
    bad = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    r = await client.post("/login", data={"csrf": bad, "username": "alice", "password": PASSWORD}, headers=SAME_ORIGIN)
    assert r.status_code == 400 and SESSION_COOKIE not in client.cookies


async def test_login_token_of_another_browser_is_refused(client, app, container, alice):
    """Login CSRF: the attacker's own (valid) token does not fit the victim's pre-session cookie."""
    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as attacker:
        attacker_token = field((await login_form(attacker)).text, "csrf")
    await login_form(client)  # the victim has their own pre-session cookie
    r = await client.post(
        "/login", data={"csrf": attacker_token, "username": "alice", "password": PASSWORD}, headers=SAME_ORIGIN
    )
    assert r.status_code == 400 and SESSION_COOKIE not in client.cookies


async def test_expired_login_form_is_refused_with_a_fresh_form(client, container, alice):
    page = await login_form(client)
    container.clock.advance(3601)
    r = await client.post(
        "/login",
        data={"csrf": field(page.text, "csrf"), "username": "alice", "password": PASSWORD},
        headers=SAME_ORIGIN,
    )
    assert r.status_code == 400
    assert "expired" in r.text
    assert field(r.text, "csrf") != field(page.text, "csrf")  # a new form to try again with
    assert SESSION_COOKIE not in client.cookies


async def test_cross_origin_login_post_is_refused_even_with_a_token(client, container, alice):
    r = await sign_in(client, headers=EVIL)
    assert r.status_code == 400 and SESSION_COOKIE not in client.cookies
    r = await sign_in(client, headers={"referer": "https://evil.example/page"})
    assert r.status_code == 400 and SESSION_COOKIE not in client.cookies


async def test_origin_null_or_absent_falls_back_to_the_token(client, container, alice):
    """Browsers send Origin: null from no-referrer pages (ours): the token decides."""
    assert (await sign_in(client, headers={"origin": "null"})).status_code == 303
    assert (await sign_in(client, headers={}, switch=True)).status_code == 303
    assert (await sign_in(client, headers={"referer": f"{ISSUER}/login"}, switch=True)).status_code == 303


# -- consent ------------------------------------------------------------------------------------
async def test_consent_post_needs_the_session_token_for_this_interaction(client, container, alice):
    rp = make_client(container)
    p = pending(container, rp)
    await sign_in(client, interaction=p.id)
    page = await client.get("/consent", params={"interaction": p.id})
    token = field(page.text, "csrf")
    other = pending(container, rp)
    other_token = field((await client.get("/consent", params={"interaction": other.id})).text, "csrf")
    for data, headers in [
        ({"interaction": p.id, "decision": "allow"}, SAME_ORIGIN),
        ({"interaction": p.id, "decision": "allow", "csrf": "nope"}, SAME_ORIGIN),
        ({"interaction": p.id, "decision": "allow", "csrf": other_token}, SAME_ORIGIN),
        ({"interaction": p.id, "decision": "allow", "csrf": token}, EVIL),
    ]:
        r = await client.post("/consent", data=data, headers=headers)
        assert r.status_code == 400
        assert container.interactions.get(p.id).consent is None
        assert not container.consents.covers(alice.id, rp.client_id, ["openid"])
    r = await client.post(
        "/consent", data={"interaction": p.id, "decision": "allow", "csrf": token}, headers=SAME_ORIGIN
    )
    assert r.status_code == 303


# -- account ------------------------------------------------------------------------------------
async def test_account_posts_need_token_and_origin(client, container, alice):
    await sign_in(client)
    token = await account_csrf(client)
    sid = container.login_sessions.from_cookie(session_value(client)).sid
    attempts = [
        ("/account/sessions/end-all", {}),
        ("/account/sessions/end", {"sid": sid}),
        ("/account/password", {"current_password": PASSWORD, "new_password": "n" * 12, "confirm_password": "n" * 12}),
        ("/account/apps/revoke", {"client_id": "x"}),
    ]
    for path, data in attempts:
        for extra, headers in [({}, SAME_ORIGIN), ({"csrf": "forged"}, SAME_ORIGIN), ({"csrf": token}, EVIL)]:
            r = await client.post(path, data=data | extra, headers=headers)
            assert r.status_code == 400, (path, extra, headers)
            assert "text/html" in r.headers["content-type"]
    # nothing changed: still signed in with the same password
    assert container.login_sessions.from_cookie(session_value(client)).sid == sid
    assert container.directory.authenticate("alice", PASSWORD) is not None


async def test_token_from_before_reauthentication_no_longer_works(client, container, alice):
    await sign_in(client)
    old = await account_csrf(client)
    await sign_in(client, switch=True)  # new session id and CSRF secret
    r = await client.post("/account/sessions/end-all", data={"csrf": old}, headers=SAME_ORIGIN)
    assert r.status_code == 400
    assert container.login_sessions.from_cookie(session_value(client)) is not None


# -- logout confirmation ------------------------------------------------------------------------
async def test_logout_confirmation_needs_the_token(client, container, alice):
    await sign_in(client)
    page = await client.get("/logout")
    assert page.status_code == 200 and "Sign out?" in page.text
    token = field(page.text, "csrf")
    for data, headers in [({"confirm": "1"}, SAME_ORIGIN), ({"confirm": "1", "csrf": "x"}, SAME_ORIGIN),
                          ({"confirm": "1", "csrf": token}, EVIL)]:  # fmt: skip
        r = await client.post("/logout", data=data, headers=headers)
        assert r.status_code == 400
        assert container.login_sessions.from_cookie(session_value(client)) is not None
    r = await client.post("/logout", data={"confirm": "1", "csrf": token}, headers=SAME_ORIGIN)
    assert r.status_code == 303
