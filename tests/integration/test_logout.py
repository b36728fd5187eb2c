"""RP-Initiated Logout 1.0 at /logout (REQUIREMENTS 3, 50; ASVS V10.6.2)."""

from __future__ import annotations

import secrets

import pytest

from idp.interaction import MAX_STATE, SESSION_COOKIE
from idp.tokens import jwt
from tests.oauthkit import stand_in
from tests.pagekit import (
    ISSUER,
    SAME_ORIGIN,
    RecordingGrants,
    deny_entries,
    field,
    make_client,
    make_user,
    session_value,
    set_cookies,
    sign_in,
)

BYE = "https://rp.example/bye"


@pytest.fixture
def alice(container):
    return make_user(container)


@pytest.fixture
def rp(container):
    return make_client(container, name="Photo Book", post_logout_redirect_uris=[BYE, "https://rp.example/bye?x=1"])


@pytest.fixture
def grants(container, monkeypatch):
    recorder = RecordingGrants()
    stand_in(monkeypatch, container.grants, recorder)
    return recorder


def id_token(container, *, sub, aud, sid=None, alg="RS256", typ="JWT", age=0.0, **extra):
    now = container.clock.now() - age
    claims = {"iss": ISSUER, "sub": sub, "aud": aud, "iat": int(now), "exp": int(now) + 900} | extra
    if sid:
        claims["sid"] = sid
    return jwt.sign(container.keyring, alg, typ, claims)


async def signed_in(client, container):
    await sign_in(client)
    return container.login_sessions.from_cookie(session_value(client))


def ended(response, container, value):
    assert "Max-Age=0" in set_cookies(response)[SESSION_COOKIE]
    return container.login_sessions.from_cookie(value) is None


async def test_hint_tied_to_the_session_logs_out_and_redirects_with_state(client, container, alice, rp, grants):
    info = await signed_in(client, container)
    value = session_value(client)
    hint = id_token(container, sub=alice.id, aud=rp.client_id, sid=info.sid, age=7 * 86_400)  # expired is fine
    r = await client.get("/logout", params={"id_token_hint": hint, "post_logout_redirect_uri": BYE, "state": "xyz 1&2"})
    assert r.status_code == 303
    assert r.headers["location"] == BYE + "?state=xyz+1%262"
    assert ended(r, container, value)
    assert container.login_sessions.list_for_user(alice.id) == []  # the record is deleted, not just the cookie
    # refresh tokens bound to the session die, offline_access ones stay (IDP_LOGOUT_REVOKES_OFFLINE=false)
    assert ("session", {"sid": info.sid, "keep_offline": True, "reason": "logout"}) in grants.calls
    if container.denylist is not None:
        assert info.sid in deny_entries(container, "session")


async def test_registered_uri_with_query_keeps_it(client, container, alice, rp):
    info = await signed_in(client, container)
    hint = id_token(container, sub=alice.id, aud=[rp.client_id], sid=info.sid)
    r = await client.get(
        "/logout", params={"id_token_hint": hint, "post_logout_redirect_uri": BYE + "?x=1", "state": "s"}
    )
    assert r.headers["location"] == BYE + "?x=1&state=s"


UNREGISTERED = [
    BYE + "/", BYE.upper(), BYE + "?foo=bar", "https://evil.example/bye", "https://rp.example/bye#x",
    "https://rp.example:443/bye", "http://rp.example/bye", "https://user@rp.example/bye", "//evil.example",
]  # fmt: skip


async def test_unregistered_post_logout_uri_is_never_followed(client, container, alice, rp):
    for uri in UNREGISTERED:
        info = await signed_in(client, container)
        value = session_value(client)
        hint = id_token(container, sub=alice.id, aud=rp.client_id, sid=info.sid)
        r = await client.get("/logout", params={"id_token_hint": hint, "post_logout_redirect_uri": uri, "state": "s"})
        assert r.status_code == 200 and "location" not in r.headers, uri  # RFC 9700 §4.11: no open redirector
        assert "signed out" in r.text
        assert ended(r, container, value)


async def test_uri_of_another_client_is_refused(client, container, alice, rp):
    other = make_client(container, name="Other", post_logout_redirect_uris=["https://other.example/bye"])
    info = await signed_in(client, container)
    hint = id_token(container, sub=alice.id, aud=rp.client_id, sid=info.sid)
    r = await client.get(
        "/logout", params={"id_token_hint": hint, "post_logout_redirect_uri": other.post_logout_redirect_uris[0]}
    )
    assert "location" not in r.headers


async def test_without_hint_asks_for_confirmation(client, container, alice, rp):
    await signed_in(client, container)
    value = session_value(client)
    r = await client.get("/logout", params={"client_id": rp.client_id, "post_logout_redirect_uri": BYE, "state": "s"})
    assert r.status_code == 200 and "Sign out?" in r.text and "Photo Book" in r.text
    assert container.login_sessions.from_cookie(value) is not None  # not logged out by a bare link
    assert field(r.text, "post_logout_redirect_uri") == BYE and field(r.text, "state") == "s"
    confirm = await client.post(
        "/logout",
        data={"confirm": "1", "csrf": field(r.text, "csrf"), "client_id": rp.client_id,
              "post_logout_redirect_uri": BYE, "state": "s"},
        headers=SAME_ORIGIN,
    )  # fmt: skip
    assert confirm.status_code == 303  # 303 after a POST, never 307
    assert confirm.headers["location"] == BYE + "?state=s"
    assert ended(confirm, container, value)


async def test_confirmation_revalidates_the_redirect(client, container, alice, rp):
    await signed_in(client, container)
    r = await client.get("/logout")
    confirm = await client.post(
        "/logout",
        data={"confirm": "1", "csrf": field(r.text, "csrf"), "client_id": rp.client_id,
              "post_logout_redirect_uri": "https://evil.example/"},
        headers=SAME_ORIGIN,
    )  # fmt: skip
    assert confirm.status_code == 303 and confirm.headers["location"] == "/logout/done"


VARIANTS = ["other_sid", "other_sub", "wrong_aud", "at_jwt", "forged", "foreign_iss", "garbage"]


async def test_hints_not_tied_to_the_session_ask_for_confirmation(client, container, alice, rp):
    info = await signed_in(client, container)
    for variant in VARIANTS:
        await _not_tied(client, container, alice, rp, info, variant)


async def _not_tied(client, container, alice, rp, info, variant):
    value = session_value(client)
    good = {"sub": alice.id, "aud": rp.client_id, "sid": info.sid}
    if variant == "other_sid":
        hint = id_token(container, **(good | {"sid": "another-session"}))
    elif variant == "other_sub":
        hint = id_token(container, **(good | {"sub": "someone-else"}))
    elif variant == "wrong_aud":  # client_id must be in the hint's aud
        hint = id_token(container, **(good | {"aud": "another-client"}))
    elif variant == "at_jwt":  # an access token is not an ID token (RFC 8725 §3.11)
        hint = id_token(container, typ="at+jwt", alg="ES256", **good)
    elif variant == "forged":
        h, p, _ = id_token(container, **good).split(".")
        hint = f"{h}.{p}.{secrets.token_urlsafe(256)}"
    elif variant == "foreign_iss":
        hint = id_token(container, **good, iss="https://evil.example")
    else:
        hint = "not.a.jwt"
    r = await client.get(
        "/logout",
        params={"id_token_hint": hint, "client_id": rp.client_id, "post_logout_redirect_uri": BYE, "state": "s"},
    )
    assert r.status_code == 200 and "Sign out?" in r.text
    assert container.login_sessions.from_cookie(value) is not None
    if variant == "wrong_aud":
        assert 'name="post_logout_redirect_uri"' not in r.text  # mismatched client: no redirect at all


async def test_hint_without_sid_ties_by_subject(client, container, alice, rp):
    await signed_in(client, container)
    value = session_value(client)
    r = await client.get("/logout", params={"id_token_hint": id_token(container, sub=alice.id, aud=rp.client_id)})
    assert r.status_code == 200 and "signed out" in r.text
    assert ended(r, container, value)


async def test_no_session_still_redirects_to_a_registered_uri(client, container, alice, rp):
    r = await client.get("/logout", params={"client_id": rp.client_id, "post_logout_redirect_uri": BYE, "state": "q"})
    assert r.status_code == 303 and r.headers["location"] == BYE + "?state=q"
    r = await client.get("/logout", params={"post_logout_redirect_uri": BYE})  # no client identified
    assert r.status_code == 200 and "location" not in r.headers


async def test_rp_initiated_logout_by_post(client, container, alice, rp):
    info = await signed_in(client, container)
    value = session_value(client)
    hint = id_token(container, sub=alice.id, aud=rp.client_id, sid=info.sid)
    # a cross-site form post from the RP: no CSRF token of ours, tied by the hint
    r = await client.post(
        "/logout",
        data={"id_token_hint": hint, "post_logout_redirect_uri": BYE, "state": "p"},
        headers={"origin": "https://rp.example"},
    )
    assert r.status_code == 303 and r.headers["location"] == BYE + "?state=p"
    assert ended(r, container, value)


@pytest.mark.parametrize("settings_overrides", [{"logout_revokes_offline": True}])
async def test_logout_can_revoke_offline_grants_too(client, container, alice, rp, grants):
    info = await signed_in(client, container)
    hint = id_token(container, sub=alice.id, aud=rp.client_id, sid=info.sid)
    await client.get("/logout", params={"id_token_hint": hint})
    assert ("session", {"sid": info.sid, "keep_offline": False, "reason": "logout"}) in grants.calls


async def test_any_state_authorize_accepts_comes_back_from_logout(client, container, alice, rp):
    """/logout bounds state as /authorize does (MAX_STATE): a state an RP may send there is echoed here too."""
    state = "s" * MAX_STATE
    await signed_in(client, container)
    value = session_value(client)
    r = await client.get("/logout", params={"client_id": rp.client_id, "post_logout_redirect_uri": BYE, "state": state})
    assert r.status_code == 200 and field(r.text, "state") == state
    confirm = await client.post(
        "/logout",
        data={"confirm": "1", "csrf": field(r.text, "csrf"), "client_id": rp.client_id,
              "post_logout_redirect_uri": BYE, "state": state},
        headers=SAME_ORIGIN,
    )  # fmt: skip
    assert confirm.status_code == 303 and confirm.headers["location"] == f"{BYE}?state={state}"
    assert ended(confirm, container, value)
    await signed_in(client, container)
    r = await client.get("/logout", params={"client_id": rp.client_id, "state": state + "s"})
    assert r.status_code == 400  # one longer than /authorize accepts: refused, not silently dropped
    assert container.login_sessions.from_cookie(session_value(client)) is not None


async def test_repeated_parameters_are_refused(client, container, alice, rp):
    await signed_in(client, container)
    r = await client.get(f"/logout?state=a&state=b&client_id={rp.client_id}")
    assert r.status_code == 400 and "more than once" in r.text
    assert session_value(client) and container.login_sessions.from_cookie(session_value(client)) is not None


async def test_logged_out_page(client):
    r = await client.get("/logout/done")
    assert r.status_code == 200 and "You're signed out" in r.text
