"""Lockout under concurrency: N simultaneous attempts for one account verify at most the threshold (REQ 76).

NIST SP 800-63B §5.2.2 limits attempts, not completed ones. Each attempt fetches its own form (its own
pre-session cookie and CSRF token), as an attacker's script does. Every verification is held at a gate
until each attempt has either reached the password check or been answered, so all of them are in flight
at once whatever the scheduling: without a reservation taken before the check, every one would verify.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from idp.services import Services, build_services
from tests.integration.resource_support import running_idp
from tests.pagekit import ISSUER, PASSWORD, SAME_ORIGIN, field, make_user

N = 30
THRESHOLD = 5  # login_max_failures' default
LOGIN_COOKIE = "__Host-idp-login"
SESSION = "__Host-idp-session"


class Gate:
    """Holds every verification until ``total`` attempts have each verified or been answered without one."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.verified = 0
        self.answered = 0
        self._lock = threading.Lock()
        self._open = threading.Event()

    def _check(self) -> None:
        if self.verified + self.answered >= self.total:
            self._open.set()

    def wrap(self, verify: Callable[..., Any]) -> Callable[..., Any]:
        def gated(*args: Any) -> Any:
            with self._lock:
                self.verified += 1
                self._check()
            self._open.wait(20)
            return verify(*args)

        return gated

    def answered_without_verifying(self) -> None:
        with self._lock:
            self.answered += 1
            self._check()

    async def until(self, count: int, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while self.verified + self.answered < count:
            assert time.monotonic() < deadline, f"{self.verified} verified + {self.answered} answered < {count}"
            await asyncio.sleep(0.01)


def cookie_from(response: httpx.Response, name: str) -> str | None:
    for line in response.headers.get_list("set-cookie"):
        key, _, rest = line.partition("=")
        if key == name:
            return rest.split(";", 1)[0]
    return None


async def sign_in_once(http: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    """GET the form, then POST it, carrying this attempt's own pre-session cookie (no shared jar)."""
    page = await http.get("/login")
    assert page.status_code == 200, page.text
    pre = cookie_from(page, LOGIN_COOKIE)
    data = {"csrf": field(page.text, "csrf"), "username": username, "password": password}
    return await http.post("/login", data=data, headers=SAME_ORIGIN | {"cookie": f"{LOGIN_COOKIE}={pre}"})


async def burst(gate: Gate, send: Callable[[int, str], Awaitable[httpx.Response]]) -> list[httpx.Response]:
    """N-1 wrong passwords at once; then, while those are still in flight, the right one."""

    async def one(i: int, password: str) -> httpx.Response:
        r = await send(i, password)
        if r.status_code == 429:
            gate.answered_without_verifying()  # with the reservation: answered while the others are held
        return r

    wrong = [asyncio.create_task(one(i, f"guess number {i}")) for i in range(N - 1)]
    await gate.until(N - 1)
    right = await asyncio.wait_for(one(N - 1, PASSWORD), 20)
    return [*await asyncio.gather(*wrong), right]


def check(results: list[httpx.Response], gate: Gate, container: Services) -> None:
    statuses = [r.status_code for r in results]
    assert gate.verified <= THRESHOLD, statuses  # at most the threshold verified...
    assert gate.verified == THRESHOLD  # ... and the threshold itself (the reservations were not lost)
    assert statuses.count(429) == N - THRESHOLD + 1  # the rest (and the one that locked) got 429
    assert all("retry-after" in r.headers for r in results if r.status_code == 429)
    assert results[-1].status_code == 429 and cookie_from(results[-1], SESSION) is None  # the right password too
    assert len(container.audit.query(action="login.failed")) == THRESHOLD
    assert container.audit.query(action="login") == []


@pytest.mark.parametrize("username", ["alice", "nobody"])  # an unknown username behaves the same (no enumeration)
async def test_simultaneous_attempts_verify_at_most_the_threshold(
    app, container: Services, monkeypatch, username: str
) -> None:
    make_user(container)
    gate = Gate(N)
    monkeypatch.setattr(container.directory, "authenticate", gate.wrap(container.directory.authenticate))
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]

    async def send(i: int, password: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:  # one browser each
            return await sign_in_once(http, username, password)

    check(await burst(gate, send), gate, container)


async def test_two_workers_on_redis_verify_at_most_the_threshold(
    backend, settings, clock, container: Services, monkeypatch
) -> None:
    """Two processes' worth of app (own containers, own Redis connections) served by uvicorn, one account."""
    if backend.name != "postgres":
        pytest.skip("two workers share state through PostgreSQL + Redis (the embedded store is one process)")
    make_user(container)
    gate = Gate(N)
    second = build_services(settings, clock=clock)
    try:
        for c in (container, second):
            monkeypatch.setattr(c.directory, "authenticate", gate.wrap(c.directory.authenticate))
        async with running_idp(container) as one, running_idp(second) as two:

            async def send(i: int, password: str) -> httpx.Response:
                async with httpx.AsyncClient(base_url=(one, two)[i % 2].url, timeout=30) as http:
                    return await sign_in_once(http, "alice", password)

            results = await burst(gate, send)
        check(results, gate, container)
    finally:
        second.close()


async def test_simultaneous_current_password_guesses_on_the_account_page(
    client: httpx.AsyncClient, container: Services, monkeypatch
) -> None:
    make_user(container)
    page = await client.get("/login")
    data = {"csrf": field(page.text, "csrf"), "username": "alice", "password": PASSWORD}
    assert (await client.post("/login", data=data, headers=SAME_ORIGIN)).status_code == 303
    token = field((await client.get("/account")).text, "csrf")
    gate = Gate(N)
    passwords = container.directory.passwords
    monkeypatch.setattr(passwords, "verify", gate.wrap(passwords.verify))

    async def guess(i: int) -> httpx.Response:
        form = {"csrf": token, "current_password": f"guess {i}", "new_password": "a brand new passphrase"}
        r = await client.post("/account/password", data=form | {"confirm_password": form["new_password"]},
                              headers=SAME_ORIGIN)  # fmt: skip
        if r.status_code == 429:
            gate.answered_without_verifying()
        return r

    statuses = [r.status_code for r in await asyncio.gather(*(guess(i) for i in range(N)))]
    assert gate.verified == THRESHOLD, statuses
    assert statuses.count(429) == N - THRESHOLD + 1
    assert container.directory.authenticate("alice", PASSWORD) is not None  # nothing changed
