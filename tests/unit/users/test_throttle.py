"""Login throttling: back-off, the NIST 100-failure cap, per-IP limits, shared state."""

from __future__ import annotations

import pytest

from idp.clock import FrozenClock
from idp.store.memory import MemoryStore
from idp.users.throttle import ACCOUNT_CAP, IP_FACTOR, MAX_LOCKOUT, WINDOW, LoginThrottle


@pytest.fixture
def clock():
    return FrozenClock(float(WINDOW * 20_000))  # the start of a window


@pytest.fixture
def store(clock):
    return MemoryStore(clock)


def make(store, clock, **kw):
    kw.setdefault("max_failures", 5)
    kw.setdefault("lockout_seconds", 60)
    return LoginThrottle(store, clock, **kw)


def test_locks_after_max_failures_with_growing_backoff(store, clock):
    t = make(store, clock)
    for _ in range(4):
        assert t.failure("alice", "10.0.0.1") is None
        assert t.retry_after("alice", "10.0.0.1") is None
    assert t.failure("alice", "10.0.0.1") == 60
    assert t.retry_after("alice", "10.0.0.9") == 60  # the account is locked from any IP
    assert t.retry_after("Alice ", "10.0.0.9") == 60  # usernames are normalised
    assert t.retry_after("bob", "10.0.0.1") is None  # the IP is not locked yet
    clock.advance(30)
    assert t.retry_after("alice", "10.0.0.1") == 30
    clock.advance(30)
    assert t.retry_after("alice", "10.0.0.1") is None
    assert t.failure("alice", "10.0.0.1") == 120  # doubles
    clock.advance(120)
    assert t.failure("alice", "10.0.0.1") == 240


def test_backoff_is_capped(store, clock):
    t = make(store, clock)
    waits = []
    for _ in range(12):
        w = t.failure("alice", f"10.0.0.{_}")
        if w:
            waits.append(w)
            clock.advance(w)
    assert max(waits) == MAX_LOCKOUT


def test_nist_cap_of_100_failures_per_account(store, clock):
    """NIST SP 800-63B §5.2.2: no more than 100 consecutive failed attempts on one account."""
    t = make(store, clock, lockout_seconds=1)
    attempts = 0
    while clock.now() < 20_000 * WINDOW + WINDOW - 1:
        if t.retry_after("alice", f"ip{attempts}") is None:
            attempts += 1
            t.failure("alice", f"ip{attempts}")
        else:
            clock.advance(t.retry_after("alice", f"ip{attempts}"))
    assert attempts == ACCOUNT_CAP


def test_success_clears_the_account_count(store, clock):
    t = make(store, clock)
    for _ in range(4):
        t.failure("alice", "10.0.0.1")
    t.success("alice")
    for _ in range(4):
        assert t.failure("alice", "10.0.0.1") is None


def test_ip_throttle_catches_spraying(store, clock):
    t = make(store, clock)
    for i in range(5 * IP_FACTOR - 1):
        assert t.failure(f"user{i}", "10.0.0.1") is None
    assert t.failure("someone", "10.0.0.1") == 60
    assert t.retry_after("never-tried", "10.0.0.1") == 60
    assert t.retry_after("never-tried", "10.0.0.2") is None


def test_state_is_shared_through_the_store(store, clock):
    worker1, worker2 = make(store, clock), make(store, clock)
    for _ in range(5):
        worker1.failure("alice", "10.0.0.1")
    assert worker2.retry_after("alice", "10.0.0.1") == 60


def test_longer_configured_lockout_is_not_cut_by_the_cap(store, clock):
    t = make(store, clock, lockout_seconds=3600)
    for _ in range(4):
        t.failure("alice", "ip")
    assert t.failure("alice", "ip") == 3600
