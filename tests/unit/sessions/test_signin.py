"""The sign-in use case on the in-memory stores and the frozen clock: no HTTP, no SQL."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import pytest

from idp.clock import FrozenClock
from idp.crypto import Digester
from idp.interaction import Interactions
from idp.sessions.second_step import SecondSteps
from idp.sessions.signin import Browser, Locked, Refused, SignedIn, SignIn
from idp.sessions.store import LoginSessions
from idp.store.memory import MemoryStore
from idp.users.directory import Directory, User
from idp.users.passwords import Passwords
from idp.users.throttle import WINDOW, LoginThrottle
from tests.unit.sessions.fakes import MemorySessionStore

DAY = 86_400.0
BROWSER = Browser("192.0.2.7", "test-agent", None)


class MemoryUsers:
    def __init__(self) -> None:
        self.rows: dict[str, User] = {}

    def get(self, user_id: str) -> User | None:
        return self.rows.get(user_id)

    def by_username(self, username: str) -> User | None:
        return next((u for u in self.rows.values() if u.username == username), None)

    def list(self) -> list[User]:
        return list(self.rows.values())

    def save(self, user: User) -> None:
        self.rows[user.id] = user


class Audit:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def record(self, action: str, *, actor: str = "system", subject: str | None = None, **detail: Any) -> None:
        self.rows.append({"action": action, "actor": actor, "subject": subject, **detail})


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(float(WINDOW * 20_000))


@pytest.fixture
def users() -> MemoryUsers:
    return MemoryUsers()


@pytest.fixture
def audit() -> Audit:
    return Audit()


@pytest.fixture
def store(clock: FrozenClock) -> MemoryStore:
    return MemoryStore(clock)


@pytest.fixture
def interactions(store: MemoryStore, clock: FrozenClock) -> Interactions:
    return Interactions(store, clock)


@pytest.fixture
def directory(clock: FrozenClock, users: MemoryUsers) -> Directory:
    passwords = Passwords(time_cost=2, memory_kib=256, parallelism=1)
    now = clock.now()
    users.save(User("u1", "alice", None, False, None, passwords.hash("correct horse"), False, now, now))
    return Directory(users, passwords, clock)


@pytest.fixture
def sign_in(
    clock: FrozenClock,
    users: MemoryUsers,
    directory: Directory,
    audit: Audit,
    store: MemoryStore,
    interactions: Interactions,
) -> SignIn:
    sessions = LoginSessions(
        MemorySessionStore(), Digester(os.urandom(32)), clock, users,
        idle_ttl=30 * DAY, absolute_ttl=90 * DAY,
    )  # fmt: skip
    throttle = LoginThrottle(store, clock, max_failures=3, lockout_seconds=60)
    return SignIn(
        throttle=throttle, directory=directory, sessions=sessions, interactions=interactions, audit=audit,
        factors=NoFactors(), second_steps=SecondSteps(store, Digester(os.urandom(32)), clock), clock=clock,
    )  # fmt: skip


class NoFactors:
    """Nobody has a second factor and none is required (the second step is tested in test_second_step)."""

    def has_second_factor(self, user_id: str) -> bool:
        return False

    def required_for(self, flags: list[str]) -> bool:
        return False


def test_success_starts_a_session_and_writes_the_audit_row(sign_in: SignIn, audit: Audit) -> None:
    outcome = sign_in.attempt("alice", "correct horse", BROWSER)
    assert isinstance(outcome, SignedIn)
    assert outcome.session.user_id == "u1" and outcome.session.amr == ("pwd",) and outcome.cookie
    assert audit.rows == [
        {
            "action": "login",
            "actor": "u1",
            "subject": "u1",
            "ip": BROWSER.ip,
            "sid": outcome.session.sid,
            "amr": ["pwd"],
        }
    ]


def test_success_resumes_the_parked_authorization(sign_in: SignIn, interactions: Interactions) -> None:
    pending = interactions.create("c1", {"scope": "openid"}, ["openid"], ip=BROWSER.ip)
    outcome = sign_in.attempt("alice", "correct horse", BROWSER, pending)
    assert isinstance(outcome, SignedIn)
    saved = interactions.get(pending.id)
    assert saved is not None
    assert saved.login_sid == outcome.session.sid and saved.login_at == outcome.session.auth_time


def test_wrong_password_and_unknown_user_are_refused_alike(sign_in: SignIn, audit: Audit) -> None:
    assert sign_in.attempt("alice", "wrong", BROWSER) == Refused()
    assert sign_in.attempt("nobody", "correct horse", BROWSER) == Refused()
    assert [r["action"] for r in audit.rows] == ["login.failed", "login.failed"]
    assert all(r["ip"] == BROWSER.ip for r in audit.rows)


def test_disabled_user_is_refused_with_the_right_password(sign_in: SignIn, users: MemoryUsers) -> None:
    user = users.get("u1")
    assert user is not None
    users.save(replace(user, disabled=True))
    assert sign_in.attempt("alice", "correct horse", BROWSER) == Refused()


def test_the_failure_that_reaches_the_limit_locks_and_says_how_long(sign_in: SignIn) -> None:
    assert sign_in.attempt("alice", "wrong", BROWSER) == Refused()
    assert sign_in.attempt("alice", "wrong", BROWSER) == Refused()
    locked = sign_in.attempt("alice", "wrong", BROWSER)
    assert isinstance(locked, Locked) and locked.retry_after > 0


def test_a_locked_account_is_refused_before_the_password_is_verified(
    sign_in: SignIn, directory: Directory, audit: Audit, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(3):
        sign_in.attempt("alice", "wrong", BROWSER)
    verified: list[str] = []
    real = directory.authenticate

    def authenticate(username: str, password: str) -> User | None:
        verified.append(username)
        return real(username, password)

    monkeypatch.setattr(directory, "authenticate", authenticate)
    before = len(audit.rows)
    outcome = sign_in.attempt("alice", "correct horse", BROWSER)
    assert isinstance(outcome, Locked) and outcome.retry_after > 0
    assert verified == [] and len(audit.rows) == before  # reserved first: nothing verified, nothing written


def test_the_lock_ends_with_its_time(sign_in: SignIn, clock: FrozenClock) -> None:
    for _ in range(3):
        sign_in.attempt("alice", "wrong", BROWSER)
    locked = sign_in.attempt("alice", "correct horse", BROWSER)
    assert isinstance(locked, Locked)
    clock.advance(locked.retry_after)
    assert isinstance(sign_in.attempt("alice", "correct horse", BROWSER), SignedIn)
