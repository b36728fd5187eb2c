"""Account page: sessions, sign out one / everywhere, authorized apps, password change, disabled users."""

from __future__ import annotations

import argparse

import httpx
import pytest

from idp.interaction import SESSION_COOKIE
from tests.oauthkit import stand_in
from tests.pagekit import (
    ISSUER,
    PASSWORD,
    SAME_ORIGIN,
    RecordingGrants,
    account_csrf,
    deny_entries,
    make_client,
    make_user,
    session_value,
    set_cookies,
    sign_in,
)

NEW_PASSWORD = "a brand new passphrase"
PHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)


@pytest.fixture
def alice(container):
    return make_user(container)


@pytest.fixture
def grants(container, monkeypatch):
    recorder = RecordingGrants()
    stand_in(monkeypatch, container.grants, recorder)
    return recorder


@pytest.fixture
async def phone(app):
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4711))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER, headers={"user-agent": PHONE_UA}) as c:
        yield c


def sid_of(container, client):
    info = container.login_sessions.from_cookie(session_value(client))
    return info.sid if info else None


async def post(client, path, **data):
    token = await account_csrf(client)
    return await client.post(path, data={"csrf": token, **data}, headers=SAME_ORIGIN)


async def test_requires_a_session(client, container, alice):
    r = await client.get("/account")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/account"
    r = await client.post("/account/sessions/end-all", data={"csrf": "x"}, headers=SAME_ORIGIN)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


async def test_lists_sessions_with_device_ip_and_this_device(client, phone, container, alice):
    await sign_in(client)
    await sign_in(phone)
    page = (await client.get("/account")).text
    assert "Safari on iPhone" in page
    assert "203.0.113.7" in page
    assert "This device" in page and page.count("This device") == 1
    assert "active just now" in page


async def test_sign_out_another_session(client, phone, container, alice, grants):
    await sign_in(client)
    await sign_in(phone)
    phone_sid = sid_of(container, phone)
    r = await post(client, "/account/sessions/end", sid=phone_sid)
    assert r.status_code == 303 and r.headers["location"] == "/account?done=session"
    assert sid_of(container, phone) is None
    assert (await phone.get("/account")).status_code == 303
    assert sid_of(container, client) is not None
    assert (
        "session",
        {"sid": phone_sid, "keep_offline": True, "reason": "signed out from account page"},
    ) in grants.calls
    if container.denylist is not None:
        assert phone_sid in deny_entries(container, "session")


async def test_cannot_sign_out_someone_elses_session(client, phone, container, alice):
    make_user(container, "bob")
    await sign_in(client)
    await sign_in(phone, "bob", PASSWORD)
    bob_sid = sid_of(container, phone)
    r = await post(client, "/account/sessions/end", sid=bob_sid)
    assert r.status_code == 303
    assert container.login_sessions.is_active(bob_sid)


async def test_sign_out_this_device_from_the_list(client, container, alice):
    await sign_in(client)
    r = await post(client, "/account/sessions/end", sid=sid_of(container, client))
    assert r.status_code == 303 and r.headers["location"] == "/logout/done"
    assert "Max-Age=0" in set_cookies(r)[SESSION_COOKIE]
    assert container.login_sessions.list_for_user(alice.id) == []


async def test_sign_out_everywhere(client, phone, container, alice, grants):
    await sign_in(client)
    await sign_in(phone)
    old_cookie = session_value(client)
    r = await post(client, "/account/sessions/end-all")
    assert r.status_code == 303 and r.headers["location"] == "/logout/done?everywhere=1"
    assert container.login_sessions.list_for_user(alice.id) == []
    assert container.login_sessions.from_cookie(old_cookie) is None
    assert (await phone.get("/account")).status_code == 303
    assert ("user", {"user_id": alice.id, "client_id": None, "reason": "sign out everywhere"}) in grants.calls
    if container.denylist is not None:
        assert alice.id in deny_entries(container, "subject")  # live access tokens die too
    done = await client.get(r.headers["location"])
    assert "signed out on every device" in done.text


async def test_authorized_apps_and_revoke_access(client, container, alice, grants):
    rp = make_client(container, name="Photo Book")
    other = make_client(container, name="Calendar")
    container.consents.grant(alice.id, rp.client_id, ["openid", "email"])
    container.consents.grant(alice.id, other.client_id, ["openid"])
    await sign_in(client)
    page = (await client.get("/account")).text
    assert "Photo Book" in page and "Calendar" in page and "See your email address" in page
    r = await post(client, "/account/apps/revoke", client_id=rp.client_id)
    assert r.status_code == 303 and r.headers["location"] == "/account?done=app"
    assert not container.consents.covers(alice.id, rp.client_id, ["openid"])
    assert container.consents.covers(alice.id, other.client_id, ["openid"])
    assert (
        "user",
        {"user_id": alice.id, "client_id": rp.client_id, "reason": "access revoked by user"},
    ) in grants.calls
    page = (await client.get("/account?done=app")).text
    assert "Photo Book" not in page and "Access removed" in page


async def test_change_password(client, phone, container, alice, grants):
    await sign_in(client)
    await sign_in(phone)
    before = session_value(client)
    sid = sid_of(container, client)
    r = await post(
        client, "/account/password",
        current_password=PASSWORD, new_password=NEW_PASSWORD, confirm_password=NEW_PASSWORD,
    )  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == "/account?done=password"
    after = session_value(client)
    assert after != before  # ASVS V7.2.4: new session id on privilege change
    assert container.login_sessions.from_cookie(before) is None
    assert container.login_sessions.from_cookie(after).sid == sid
    assert sid_of(container, phone) is None  # other sessions ended
    assert ("user", {"user_id": alice.id, "client_id": None, "reason": "password changed"}) in grants.calls
    assert container.directory.authenticate("alice", NEW_PASSWORD) is not None
    assert container.directory.authenticate("alice", PASSWORD) is None
    assert "Password changed" in (await client.get("/account?done=password")).text


@pytest.mark.parametrize(
    ("current", "new", "confirm", "message"),
    [
        ("wrong password", NEW_PASSWORD, NEW_PASSWORD, "current password is not correct"),
        (PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x", "do not match"),
        (PASSWORD, "short", "short", "8-1024 characters"),
        (PASSWORD, "password1", "password1", "Password is too common"),  # NIST SP 800-63B §5.1.1.2
        (PASSWORD, "Alice2024!", "Alice2024!", "must not be the username or email"),
    ],
)
async def test_change_password_errors_change_nothing(client, phone, container, alice, current, new, confirm, message):
    await sign_in(client)
    await sign_in(phone)
    before = session_value(client)
    r = await post(client, "/account/password", current_password=current, new_password=new, confirm_password=confirm)
    assert r.status_code == 400 and message in r.text
    assert session_value(client) == before
    assert sid_of(container, phone) is not None
    assert container.directory.authenticate("alice", PASSWORD) is not None


async def test_change_password_guesses_are_throttled(client, container, alice):
    await sign_in(client)
    statuses = []
    for _ in range(6):
        r = await post(client, "/account/password", current_password="guess", new_password=NEW_PASSWORD,
                       confirm_password=NEW_PASSWORD)  # fmt: skip
        statuses.append(r.status_code)
    assert statuses[:4] == [400] * 4 and statuses[4:] == [429, 429]
    assert "retry-after" in r.headers


async def test_disabling_a_user_ends_their_sessions(client, container, alice, grants):
    from idp.cli.users import _users_set_disabled

    await sign_in(client)
    sid = sid_of(container, client)
    _users_set_disabled(True)(container, argparse.Namespace(username="alice", json=True))
    assert not container.login_sessions.is_active(sid)
    assert container.login_sessions.list_for_user(alice.id) == []
    assert ("user", {"user_id": alice.id, "client_id": None, "reason": "user disabled"}) in grants.calls
    assert (await client.get("/account")).status_code == 303
