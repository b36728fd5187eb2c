"""Sign-in page: credentials, the interaction hand-off, redirects, error messages."""

from __future__ import annotations

import re

import pytest

from idp.interaction import SESSION_COOKIE
from tests.pagekit import (
    PASSWORD,
    SAME_ORIGIN,
    field,
    login_form,
    make_client,
    make_user,
    pending,
    session_value,
    sign_in,
)


@pytest.fixture
def alice(container):
    return make_user(container)


async def test_sign_in_without_interaction_lands_on_account(client, container, alice):
    r = await sign_in(client)
    assert r.status_code == 303  # RFC 9700 §4.12: never 307 after POSTing credentials
    assert r.headers["location"] == "/account"
    assert session_value(client)
    account = await client.get("/account")
    assert account.status_code == 200
    assert "alice@example.com" in account.text


async def test_sign_in_with_interaction_records_session_and_resumes(client, container, alice):
    rp = make_client(container)
    p = pending(container, rp)
    r = await sign_in(client, interaction=p.id)
    assert r.status_code == 303
    assert r.headers["location"] == f"/authorize/resume?interaction={p.id}"
    stored = container.interactions.get(p.id)
    info = container.login_sessions.from_cookie(session_value(client))
    assert stored.login_sid == info.sid
    assert stored.login_at == container.clock.now() == info.auth_time
    assert info.user_id == alice.id


async def test_login_page_names_the_client_and_prefills_login_hint(client, container, alice):
    rp = make_client(container, name="Photo <Book>")
    p = pending(container, rp, login_hint="alice")
    page = await login_form(client, interaction=p.id)
    assert "Photo &lt;Book&gt;" in page.text  # autoescaped
    assert field(page.text, "username") == "alice"


async def test_wrong_password_and_unknown_user_get_the_same_answer(client, container, alice):
    wrong = await sign_in(client, "alice", "not the password")
    unknown = await sign_in(client, "mallory", "not the password")
    assert wrong.status_code == unknown.status_code == 400
    assert "Incorrect username or password." in wrong.text

    def scrub(text: str) -> str:
        text = re.sub(r'name="csrf" value="[^"]*"', "", text)
        return re.sub(r'name="username" type="text" value="[^"]*"', "", text)

    assert scrub(wrong.text) == scrub(unknown.text)
    assert session_value(client) is None


async def test_disabled_user_cannot_sign_in(client, container, alice):
    container.directory.set_disabled("alice", True)
    r = await sign_in(client)
    assert r.status_code == 400
    assert "Incorrect username or password." in r.text


async def test_expired_interaction_shows_error_page_and_no_redirect(client, container, alice):
    p = pending(container, make_client(container))
    container.clock.advance(601)
    r = await client.get("/login", params={"interaction": p.id})
    assert r.status_code == 400
    assert "location" not in r.headers
    assert "interaction_expired" in r.text


async def test_next_is_never_an_open_redirect(client, container, alice):
    targets = ["https://evil.example/", "//evil.example/x", "/\\evil.example", "http:/evil", "javascript:alert(1)",
               "evil", "/\t/evil.example", "///evil.example"]  # fmt: skip
    for target in targets:
        r = await sign_in(client, next_path=target, switch=True)
        assert r.status_code == 303
        assert r.headers["location"] == "/account", target  # RFC 9700 §4.11


@pytest.mark.parametrize("target", ["/account\x7f", "/acc\u00e9unt", "/\u20ac", "/a\u2028b", "/a b", "/a\tb"])
async def test_next_with_characters_no_header_can_carry_falls_back(client, container, alice, target):
    r = await sign_in(client, next_path=target, switch=True)
    assert r.status_code == 303 and r.headers["location"] == "/account", target  # never a 500 or a torn header
    r = await client.get("/login", params={"next": target})  # signed in: straight to next
    assert r.status_code == 303 and r.headers["location"] == "/account", target


async def test_next_allows_same_origin_paths(client, container, alice):
    r = await sign_in(client, next_path="/account?x=1")
    assert r.headers["location"] == "/account?x=1"


async def test_signed_in_visit_to_login_goes_to_next(client, container, alice):
    await sign_in(client)
    r = await client.get("/login")
    assert r.status_code == 303 and r.headers["location"] == "/account"


async def test_reauthentication_shows_signed_in_as_and_not_you(client, container, alice):
    await sign_in(client)
    p = pending(container, make_client(container), prompt="login")
    page = await login_form(client, interaction=p.id)
    assert "Signed in as <strong>alice</strong>" in page.text
    assert "switch=1" in page.text
    switched = await login_form(client, interaction=p.id, switch="1")
    assert "Signed in as" not in switched.text


async def test_reauthentication_updates_auth_time_and_keeps_sid(client, container, alice):
    await sign_in(client)
    first = container.login_sessions.from_cookie(session_value(client))
    container.clock.advance(3600)
    p = pending(container, make_client(container), prompt="login")
    await sign_in(client, interaction=p.id)
    second = container.login_sessions.from_cookie(session_value(client))
    assert second.sid == first.sid
    assert second.auth_time == first.auth_time + 3600
    assert container.interactions.get(p.id).login_at == second.auth_time


async def test_another_user_signing_in_ends_the_previous_session(client, container, alice):
    make_user(container, "bob")
    await sign_in(client)
    first = container.login_sessions.from_cookie(session_value(client))
    await sign_in(client, "bob", PASSWORD, switch=True)
    second = container.login_sessions.from_cookie(session_value(client))
    assert second.user_id != alice.id
    assert second.sid != first.sid
    assert not container.login_sessions.is_active(first.sid)


async def test_empty_fields_and_oversized_input_are_400_pages(client, container, alice):
    page = await login_form(client)
    csrf = field(page.text, "csrf")
    r = await client.post("/login", data={"csrf": csrf, "username": "", "password": ""}, headers=SAME_ORIGIN)
    assert r.status_code == 400 and "Enter your username and password." in r.text
    r = await client.post("/login", data={"csrf": csrf, "username": "a" * 5000, "password": "x"}, headers=SAME_ORIGIN)
    assert r.status_code == 400 and "text/html" in r.headers["content-type"]
    r = await client.post(
        "/login",
        content="username=a&username=b&password=x&csrf=" + csrf,
        headers=SAME_ORIGIN | {"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 400 and "more than once" in r.text
    assert SESSION_COOKIE not in client.cookies


async def test_rehash_on_login_when_parameters_change(client, container, alice):
    from idp.users.passwords import Passwords

    weaker = Passwords(time_cost=1, memory_kib=19_456)
    container.directory.set_password(alice, PASSWORD)
    user = container.directory.store.get(alice.id)
    from dataclasses import replace

    container.directory.store.save(replace(user, password_hash=weaker.hash(PASSWORD)))
    assert container.directory.passwords.needs_rehash(container.directory.store.get(alice.id).password_hash)
    r = await sign_in(client)
    assert r.status_code == 303
    assert not container.directory.passwords.needs_rehash(container.directory.store.get(alice.id).password_hash)


async def test_password_verification_runs_off_the_event_loop(client, container, alice, monkeypatch):
    import threading

    seen = []
    original = container.directory.authenticate

    def spy(username, password):
        seen.append(threading.current_thread())
        return original(username, password)

    monkeypatch.setattr(container.directory, "authenticate", spy)
    assert (await sign_in(client)).status_code == 303
    assert seen and seen[0] is not threading.current_thread()  # a worker thread, not the event loop's


async def test_unknown_user_costs_one_argon2_verification_like_a_known_one(client, container, alice, monkeypatch):
    calls = []
    original = container.directory.passwords.verify

    def spy(stored, password):
        calls.append(stored is None)
        return original(stored, password)

    monkeypatch.setattr(container.directory.passwords, "verify", spy)
    await sign_in(client, "alice", "wrong password")
    await sign_in(client, "nobody", "wrong password")
    assert calls == [False, True]  # one verification each (the unknown user against the dummy hash)
