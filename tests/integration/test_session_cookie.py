"""The login session cookie and its server-side record (ASVS V7.2-V7.3, REQUIREMENTS 52-55)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp.interaction import SESSION_COOKIE
from idp.store.models import LoginSessionRow
from tests.pagekit import make_user, session_value, set_cookies, sign_in

DAY = 86_400


@pytest.fixture
def alice(container):
    return make_user(container)


def rows(container):
    with container.sessions() as s:
        return list(s.scalars(select(LoginSessionRow)))


async def test_cookie_attributes(client, alice):
    r = await sign_in(client)
    line = set_cookies(r)[SESSION_COOKIE]
    attrs = {a.strip().split("=", 1)[0].lower(): a.strip() for a in line.split(";")[1:]}
    # RFC 6265bis §4.1.3.2 (__Host- prefix) + ASVS V3: Secure, HttpOnly, SameSite=Lax, Path=/, no Domain
    assert line.startswith("__Host-idp-session=")
    assert "secure" in attrs and "httponly" in attrs
    assert attrs["samesite"].lower() == "samesite=lax"
    assert attrs["path"] == "Path=/"
    assert "domain" not in attrs
    assert int(attrs["max-age"].split("=")[1]) == 90 * DAY


async def test_cookie_is_opaque_random_and_stored_only_as_digest(client, container, alice):
    await sign_in(client)
    value = session_value(client)
    assert len(value) >= 43  # 256 bits of base64url (ASVS V7.2.3 asks >= 128)
    assert "." not in value  # not a JWT or a signed blob: an opaque id
    [row] = rows(container)
    assert row.id_digest == container.digester.digest(value)
    assert value.encode() not in repr(row.__dict__).encode()
    assert row.sid != value  # the public sid is a separate id


async def test_no_client_side_session_middleware(container):
    from idp.app import create_app

    names = [m.cls.__name__ for m in create_app(services=container).user_middleware]
    assert "SessionMiddleware" not in names  # the session is server-side, never a signed client cookie


async def test_new_id_at_login_and_planted_cookie_not_adopted(client, container, alice):
    client.cookies.set(SESSION_COOKIE, "attacker-chosen-value", domain="idp.test", path="/")
    await sign_in(client)
    assert session_value(client) != "attacker-chosen-value"  # ASVS V7.2.4: no fixation


async def test_reauthentication_rotates_the_id_and_kills_the_old_one(client, container, alice):
    await sign_in(client)
    before = session_value(client)
    await sign_in(client, switch=True)
    after = session_value(client)
    assert before != after
    assert container.login_sessions.from_cookie(before) is None  # old id rejected
    assert container.login_sessions.from_cookie(after) is not None
    assert len(rows(container)) == 1


async def test_idle_timeout_and_sliding(client, container, alice):
    await sign_in(client)
    for _ in range(3):  # 3 x 29 days of activity: sliding keeps it alive
        container.clock.advance(29 * DAY)
        assert (await client.get("/account")).status_code == 200
    container.clock.advance(30 * DAY + 1)  # 30 days idle: over
    r = await client.get("/account")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert rows(container) == []  # the record is gone, not just unusable


async def test_absolute_timeout_even_with_activity(client, container, alice):
    await sign_in(client)
    value = session_value(client)
    for _ in range(89):
        container.clock.advance(DAY)
        assert container.login_sessions.from_cookie(value) is not None
    container.clock.advance(DAY)  # 90 days since sign-in
    assert container.login_sessions.from_cookie(value) is None


@pytest.mark.parametrize("settings_overrides", [{"session_idle_ttl": 600, "session_absolute_ttl": 3600}])
async def test_lifetimes_come_from_settings(client, container, alice):
    await sign_in(client)
    value = session_value(client)
    container.clock.advance(599)
    assert container.login_sessions.from_cookie(value) is not None
    container.clock.advance(601)
    assert container.login_sessions.from_cookie(value) is None


async def test_disabled_user_session_is_rejected(client, container, alice):
    await sign_in(client)
    value = session_value(client)
    container.directory.set_disabled("alice", True)
    assert container.login_sessions.from_cookie(value) is None


async def test_garbage_cookie_values_are_rejected(client, container, alice):
    for junk in ["", "x", "a" * 5000, "%00", "..", "€"]:
        assert container.login_sessions.from_cookie(junk) is None
    client.cookies.set(SESSION_COOKIE, "a" * 3000, domain="idp.test", path="/")
    r = await client.get("/account")
    assert r.status_code == 303
