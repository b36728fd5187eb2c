"""Login throttling: back-off, the NIST 100-failure cap, per-IP limits, shared state, reservations."""

from __future__ import annotations

import math
import threading

import pytest

from idp.clock import FrozenClock
from idp.store.memory import MemoryStore
from idp.users.throttle import ACCOUNT_CAP, IP_FACTOR, MAX_LOCKOUT, WINDOW, Attempt, LoginThrottle


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


def fail(t: LoginThrottle, username: str, ip: str) -> int | None:
    """One wrong-password attempt: reserved, then failed. The wait it was told (refused or locking)."""
    attempt = t.begin(username, ip)
    return attempt if isinstance(attempt, int) else attempt.failure()


def ok(t: LoginThrottle, username: str, ip: str) -> None:
    attempt = t.begin(username, ip)
    assert isinstance(attempt, Attempt)
    attempt.success()


def test_locks_after_max_failures_with_growing_backoff(store, clock):
    t = make(store, clock)
    for _ in range(4):
        assert fail(t, "alice", "10.0.0.1") is None
        assert t.retry_after("alice", "10.0.0.1") is None
    assert fail(t, "alice", "10.0.0.1") == 60
    assert t.retry_after("alice", "10.0.0.9") == 60  # the account is locked from any IP
    assert t.retry_after("Alice ", "10.0.0.9") == 60  # usernames are normalised
    assert t.retry_after("bob", "10.0.0.1") is None  # the IP is not locked yet
    clock.advance(30)
    assert t.retry_after("alice", "10.0.0.1") == 30
    clock.advance(30)
    assert t.retry_after("alice", "10.0.0.1") is None
    assert fail(t, "alice", "10.0.0.1") == 120  # doubles
    clock.advance(120)
    assert fail(t, "alice", "10.0.0.1") == 240


def test_backoff_is_capped(store, clock):
    t = make(store, clock)
    waits = []
    for _ in range(12):
        w = fail(t, "alice", f"10.0.0.{_}")
        if w:
            waits.append(w)
            clock.advance(w)
    assert max(waits) == MAX_LOCKOUT


def test_nist_cap_of_100_failures_per_account(store, clock):
    """NIST SP 800-63B §5.2.2: no more than 100 consecutive failed attempts on one account."""
    t = make(store, clock, lockout_seconds=1)
    attempts = 0
    while clock.now() < 20_000 * WINDOW + WINDOW - 1:
        attempt = t.begin("alice", f"ip{attempts}")
        if isinstance(attempt, Attempt):
            attempts += 1
            attempt.failure()
        else:
            clock.advance(attempt)
    assert attempts == ACCOUNT_CAP


def test_success_clears_the_account_count(store, clock):
    t = make(store, clock)
    for _ in range(4):
        fail(t, "alice", "10.0.0.1")
    ok(t, "alice", "10.0.0.1")
    for _ in range(4):
        assert fail(t, "alice", "10.0.0.1") is None


def test_ip_throttle_catches_spraying(store, clock):
    t = make(store, clock)
    for i in range(5 * IP_FACTOR - 1):
        assert fail(t, f"user{i}", "10.0.0.1") is None
    assert fail(t, "someone", "10.0.0.1") == 60
    assert t.retry_after("never-tried", "10.0.0.1") == 60
    assert t.retry_after("never-tried", "10.0.0.2") is None


def test_state_is_shared_through_the_store(store, clock):
    worker1, worker2 = make(store, clock), make(store, clock)
    for _ in range(5):
        fail(worker1, "alice", "10.0.0.1")
    assert worker2.retry_after("alice", "10.0.0.1") == 60


def test_longer_configured_lockout_is_not_cut_by_the_cap(store, clock):
    t = make(store, clock, lockout_seconds=3600)
    for _ in range(4):
        fail(t, "alice", "ip")
    assert fail(t, "alice", "ip") == 3600


# -- reservations: limits that hold under concurrency (NIST SP 800-63B §5.2.2 counts attempts) -----------
def begin_concurrently(t: LoginThrottle, n: int, username=lambda i: "alice", ip=lambda i: "10.0.0.1"):
    """``n`` threads call ``begin`` at once; nothing is settled. Returns what each got."""
    start = threading.Barrier(n)
    results: list[Attempt | int] = [0] * n

    def go(i: int) -> None:
        start.wait(5)
        results[i] = t.begin(username(i), ip(i))

    pool = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for th in pool:
        th.start()
    for th in pool:
        th.join(5)
    return results


def test_simultaneous_attempts_admit_at_most_the_threshold(store, clock):
    t = make(store, clock)
    results = begin_concurrently(t, 30)
    admitted = [r for r in results if isinstance(r, Attempt)]
    assert len(admitted) == 5  # all thirty are in flight at once: only five may verify
    assert sorted(r for r in results if isinstance(r, int)) == [60] * 25
    waits = [a.failure() for a in admitted]
    assert sorted(waits, key=lambda w: w or 0) == [None, None, None, None, 60]
    assert isinstance(t.begin("alice", "10.0.0.2"), int)  # the owner, right password or not, waits


def test_the_owner_is_refused_while_attempts_hold_every_slot(store, clock):
    t = make(store, clock)
    held = [t.begin("alice", "10.0.0.1") for _ in range(5)]  # five still verifying
    assert all(isinstance(a, Attempt) for a in held)
    assert t.begin("alice", "192.0.2.7") == 60  # refused before any verification
    for a in held:
        a.failure()
    assert t.retry_after("alice", "192.0.2.7") == 60


def test_after_each_lock_one_attempt_at_a_time(store, clock):
    t = make(store, clock)
    for _ in range(5):
        fail(t, "alice", f"10.0.0.{_}")
    for _ in range(10):  # refused attempts while locked change nothing
        assert t.begin("alice", "10.0.0.9") == 60
    clock.advance(60)
    results = begin_concurrently(t, 20, ip=lambda i: f"10.1.0.{i}")
    admitted = [r for r in results if isinstance(r, Attempt)]
    assert len(admitted) == 1 and all(r == 120 for r in results if isinstance(r, int))
    assert admitted[0].failure() == 120
    clock.advance(120)
    assert isinstance(t.begin("alice", "10.0.0.9"), Attempt)


def test_an_attempt_lost_in_flight_counts_as_a_failure_not_a_permanent_lock(store, clock):
    t = make(store, clock)
    for _ in range(4):
        fail(t, "alice", "10.0.0.1")
    lost = t.begin("alice", "10.0.0.1")  # the fifth: its worker dies before settling it
    assert isinstance(lost, Attempt)
    assert t.retry_after("alice", "10.0.0.1") == 60  # locked already, as if it failed
    clock.advance(60)
    assert isinstance(t.begin("alice", "10.0.0.1"), Attempt)


def test_a_success_lifts_the_lock_its_reservation_wrote(store, clock):
    t = make(store, clock)
    for _ in range(4):
        fail(t, "alice", "10.0.0.1")
    ok(t, "alice", "10.0.0.1")  # the fifth attempt had the right password
    assert t.retry_after("alice", "10.0.0.1") is None
    for _ in range(4):
        assert fail(t, "alice", "10.0.0.1") is None  # the count starts again


def test_simultaneous_spraying_from_one_ip_is_bounded(store, clock):
    t = make(store, clock)
    results = begin_concurrently(t, 40, username=lambda i: f"user{i}")
    assert sum(isinstance(r, Attempt) for r in results) == 5 * IP_FACTOR


def test_successes_do_not_count_against_the_ip(store, clock):
    t = make(store, clock)
    for i in range(5 * IP_FACTOR * 3):  # an office behind one NAT address signing in all day
        ok(t, f"user{i}", "10.0.0.1")
    for i in range(5 * IP_FACTOR - 1):
        assert fail(t, f"typo{i}", "10.0.0.1") is None
    ok(t, "last", "10.0.0.1")  # reached the IP threshold, and succeeded: the lock it wrote goes
    assert t.retry_after("anyone", "10.0.0.1") is None
    assert fail(t, "someone", "10.0.0.1") == 60


def test_a_refused_ip_gives_the_account_its_reservation_back(store, clock):
    """The IP's slots are all taken but its lock is not written yet (another worker is between the two)."""
    t = make(store, clock)
    window = int(clock.now() // WINDOW)
    for _ in range(5 * IP_FACTOR):
        store.incr(f"throttle:tries:ip:10.0.0.1:{window}", WINDOW)
    held = [t.begin("alice", "10.0.0.2") for _ in range(4)]  # four of alice's five slots in flight
    assert t.begin("alice", "10.0.0.1") == 60  # refused by the IP, after alice's fifth slot was reserved
    assert isinstance(t.begin("alice", "10.0.0.3"), Attempt)  # ... and given back
    assert all(isinstance(a, Attempt) for a in held)


# -- waits, window edges and the records behind them -------------------------------------------------------
class InterleavedStore(MemoryStore):
    """Runs ``between`` once, just before the next reservation: another worker's attempt lands after this
    one read the lock record and before it reserves (the race the atomic counter must settle)."""

    between = None

    def reserve(self, key, limit, window):
        run, self.between = self.between, None
        if run is not None:
            run()
        return super().reserve(key, limit, window)


def fail_times(t: LoginThrottle, clock: FrozenClock, n: int, username: str = "alice") -> int | None:
    """``n`` failed attempts on ``username`` from as many IPs, waiting out every lock; the last one's wait."""
    done, wait = 0, None
    while done < n:
        attempt = t.begin(username, f"ip{done}")
        if isinstance(attempt, int):
            clock.advance(attempt)
            continue
        done += 1
        wait = attempt.failure()
    return wait


def window_end(clock: FrozenClock) -> float:
    return (clock.now() // WINDOW + 1) * WINDOW


def test_waits_are_rounded_up_to_whole_seconds_and_never_more(store, clock):
    """Retry-After is the time left, rounded up: a one-second lock says 1, half a second left says 1."""
    t = make(store, clock, lockout_seconds=1)
    for _ in range(4):
        fail(t, "alice", "10.0.0.1")
    assert fail(t, "alice", "10.0.0.1") == 1
    assert t.retry_after("alice", "10.0.0.1") == 1
    clock.advance(0.5)
    assert t.retry_after("alice", "10.0.0.1") == 1
    assert t.begin("alice", "10.0.0.1") == 1
    # The IP's slots taken by attempts still verifying elsewhere (no lock written yet): refused, told 1 s.
    window = int(clock.now() // WINDOW)
    for _ in range(5 * IP_FACTOR):
        store.incr(f"throttle:tries:ip:10.0.0.7:{window}", WINDOW)
    assert t.begin("bob", "10.0.0.7") == 1


def test_attempts_that_read_the_same_lock_get_one_slot_between_them(clock):
    """After a lock passes, one attempt per back-off step, even when two read the old lock at once."""
    store = InterleavedStore(clock)
    t = make(store, clock)
    fail_times(t, clock, 5)
    clock.advance(60)
    other: list[Attempt | int] = []
    store.between = lambda: other.append(t.begin("alice", "10.0.0.8"))
    assert t.begin("alice", "10.0.0.9") == 120  # refused: the other worker took the one slot
    assert isinstance(other[0], Attempt)
    assert other[0].failure() == 120


def test_the_hundredth_failure_locks_until_the_window_ends_then_a_new_window_starts_afresh(store, clock):
    """NIST SP 800-63B §5.2.2: at 100 failures the account stays locked for the rest of the window."""
    t = make(store, clock, lockout_seconds=1)
    fail_times(t, clock, ACCOUNT_CAP - 1)
    clock.advance(t.retry_after("alice", "x") or 0)
    end = window_end(clock)
    attempt = t.begin("alice", "10.0.0.1")
    assert isinstance(attempt, Attempt)
    assert attempt.failure() == math.ceil(end - clock.now())
    assert t.retry_after("alice", "10.0.0.2") == math.ceil(end - clock.now())
    clock.advance(end - clock.now())
    for _ in range(4):  # the next window counts from zero again
        assert fail(t, "alice", "10.0.0.1") is None
    assert fail(t, "alice", "10.0.0.1") == 1


def test_an_attempt_refused_at_the_cap_waits_for_the_window_to_end(clock):
    """The hundredth attempt is in flight at another worker: a refused one is told the end of the window."""
    store = InterleavedStore(clock)
    t = make(store, clock, lockout_seconds=1)
    fail_times(t, clock, ACCOUNT_CAP - 1)
    clock.advance(t.retry_after("alice", "x") or 0)
    other: list[Attempt | int] = []
    store.between = lambda: other.append(t.begin("alice", "10.0.0.8"))
    assert t.begin("alice", "10.0.0.9") == math.ceil(window_end(clock) - clock.now())
    assert isinstance(other[0], Attempt)


def test_failures_count_for_the_whole_window(store, clock):
    t = make(store, clock)
    for _ in range(4):
        fail(t, "alice", "10.0.0.1")
    clock.advance(WINDOW - 1)  # the window's last second: the four still count
    assert fail(t, "alice", "10.0.0.1") == 60


def test_a_lock_that_runs_past_the_window_end_holds_to_its_deadline(store, clock):
    t = make(store, clock, lockout_seconds=600)
    clock.advance(WINDOW - 30)
    fail_times(t, clock, 5)
    clock.advance(570)  # in the next window
    assert t.retry_after("alice", "10.0.0.1") == 30
    assert t.begin("alice", "10.0.0.1") == 30


def test_back_off_continues_however_long_one_waits_within_the_window(store, clock):
    t = make(store, clock)
    fail_times(t, clock, 5)
    clock.advance(3600)
    assert fail(t, "alice", "10.0.0.1") == 120  # one attempt, then the doubled lock
    assert t.begin("alice", "10.0.0.2") == 120


def test_a_success_after_the_ip_lock_keeps_its_one_attempt_and_back_off(store, clock):
    """A success at an IP whose lock has passed gives its slot back: the IP is not refused next time, and
    the next failure there doubles the lock (successes neither count against the IP nor reset it)."""
    t = make(store, clock)
    for i in range(5 * IP_FACTOR):
        fail(t, f"user{i}", "10.0.0.1")
    clock.advance(60)
    ok(t, "alice", "10.0.0.1")
    assert t.retry_after("anyone", "10.0.0.1") is None
    assert fail(t, "bob", "10.0.0.1") == 120
