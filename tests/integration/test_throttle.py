"""Brute-force throttling on the sign-in form: per account and per IP, 429 + Retry-After, shared (REQ 60)."""

from __future__ import annotations

import httpx
import pytest

from idp.services import build_services
from idp.users.throttle import IP_FACTOR
from tests.pagekit import ISSUER, make_user, session_value, sign_in


@pytest.fixture
def alice(container):
    return make_user(container)


async def test_account_is_throttled_after_max_failures(client, container, alice):
    for _ in range(4):
        assert (await sign_in(client, password="wrong password")).status_code == 400
    r = await sign_in(client, password="wrong password")
    assert r.status_code == 429
    assert r.headers["retry-after"] == "60"
    assert "Too many attempts" in r.text
    r = await sign_in(client)  # even the right password waits: no oracle while locked
    assert r.status_code == 429 and session_value(client) is None
    container.clock.advance(60)
    r = await sign_in(client)
    assert r.status_code == 303 and session_value(client)


async def test_unknown_usernames_are_throttled_identically(client, container, alice):
    known, unknown = [], []
    for _ in range(6):
        known.append((await sign_in(client, "alice", "wrong password")).status_code)
        unknown.append((await sign_in(client, "nobody", "wrong password")).status_code)
    assert known == unknown == [400, 400, 400, 400, 429, 429]


async def test_throttled_attempts_do_not_verify_passwords(client, container, alice, monkeypatch):
    for _ in range(5):
        await sign_in(client, password="wrong password")
    calls = []
    monkeypatch.setattr(container.directory, "authenticate", lambda *a: calls.append(a))
    assert (await sign_in(client)).status_code == 429
    assert calls == []


async def test_ip_is_throttled_across_usernames(app, container, alice):
    transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 5000))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as sprayer:
        for i in range(5 * IP_FACTOR - 1):
            assert (await sign_in(sprayer, f"user{i}", "Winter2024!")).status_code == 400
        r = await sign_in(sprayer, "user-last", "Winter2024!")
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert (await sign_in(sprayer)).status_code == 429  # alice from the same IP waits too
    other = httpx.ASGITransport(app=app, client=("198.51.100.10", 5000))
    async with httpx.AsyncClient(transport=other, base_url=ISSUER) as elsewhere:
        assert (await sign_in(elsewhere)).status_code == 303  # alice elsewhere is fine


@pytest.mark.parametrize("settings_overrides", [{"login_max_failures": 2, "login_lockout_seconds": 300}])
async def test_settings_drive_the_threshold(client, container, alice):
    assert (await sign_in(client, password="wrong password")).status_code == 400
    r = await sign_in(client, password="wrong password")
    assert r.status_code == 429 and r.headers["retry-after"] == "300"


async def test_lock_holds_across_workers(client, container, settings, clock, alice, backend):
    """A second process (container) sharing the store sees the lock."""
    for _ in range(5):
        await sign_in(client, password="wrong password")
    if backend.name == "embedded":
        other = build_services(settings, clock=clock, ephemeral=container.ephemeral)
    else:
        other = build_services(settings, clock=clock)  # its own Redis connection
    try:
        assert other.throttle.retry_after("alice", "10.9.9.9") == 60
    finally:
        if backend.name != "embedded":
            other.close()
        else:
            other.engine.dispose()


async def test_success_resets_the_account_count(client, container, alice):
    for _ in range(4):
        await sign_in(client, password="wrong password")
    assert (await sign_in(client)).status_code == 303
    for _ in range(4):
        assert (await sign_in(client, password="wrong password", switch=True)).status_code == 400
