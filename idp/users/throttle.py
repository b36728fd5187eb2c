"""Login throttling per account and per client IP, kept in the ephemeral store (shared by every worker).

* Account: after ``max_failures`` failed sign-ins the account is locked for
  ``lockout_seconds``, doubling with each further failure (capped at
  ``MAX_LOCKOUT``, or ``lockout_seconds`` when that is longer). At
  ``ACCOUNT_CAP`` failures in one (24 h) window it stays locked until the
  window ends: NIST SP 800-63B §5.2.2 allows no more than 100 consecutive
  failed attempts per account. A success clears the account's count. Unknown
  usernames are counted exactly like real ones, so throttling reveals nothing.
* IP: the same back-off from ``max_failures * IP_FACTOR`` failures (one office
  behind NAT should not lock itself out after five typos), which catches
  password spraying across many usernames. Successes do not count against it.

Attempts are reserved *before* the password is verified (:meth:`LoginThrottle.begin`): an
atomic counter per account and per IP (:meth:`EphemeralStore.reserve`) admits at most the
attempts the threshold (or, once locked, the back-off) allows, however many arrive at the
same instant; the rest are refused without a verification. The reservation that reaches the
threshold writes the lock at once, assuming the attempt fails; its success lifts the lock
again. A lock record carries ``allow``, the count the counter may reach once the lock has
passed (one more attempt per back-off step), so a refused attempt never changes the count
and an attempt lost in flight (a crashed worker) still counts as a failure, never as a
permanent lock.

A ``scope`` keeps another kind of attempt apart: second-factor codes are throttled by a LoginThrottle of
scope ``otp`` keyed by the user id, so a correct password (which clears the password count) never clears
the count of wrong codes.

Counters live in fixed windows of the injected clock and lock deadlines are
stored values compared with it; store TTLs only collect garbage.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from idp.clock import Clock
from idp.ephemeral import EphemeralStore

WINDOW = 86_400
MAX_LOCKOUT = 900
ACCOUNT_CAP = 100
IP_FACTOR = 4
GRACE = 60
"""Seconds a counter or lock record outlives its use in the store (clock skew between workers)."""


@dataclass(frozen=True)
class _Lock:
    until: float
    allow: int
    window: int

    def encode(self) -> bytes:
        return f"{self.until!r} {self.allow} {self.window}".encode()

    @staticmethod
    def decode(raw: bytes | None) -> _Lock | None:
        if raw is None:
            return None
        try:
            until, allow, window = raw.split()
            return _Lock(float(until), int(allow), int(window))
        except ValueError:
            return None


@dataclass(frozen=True)
class _Limit:
    """One throttled party: the account or the IP."""

    who: str
    threshold: int
    cap: int | None


@dataclass(frozen=True)
class _Slot:
    """A reservation held by an attempt: the counter it incremented and the lock it wrote, if any."""

    limit: _Limit
    counter: str
    n: int
    locked_until: float | None


class Attempt:
    """An admitted attempt, reserved before verification; settle it once with ``failure`` or ``success``."""

    def __init__(self, throttle: LoginThrottle, window: int, account: _Slot, ip: _Slot) -> None:
        self._throttle = throttle
        self._window = window
        self._account = account
        self._ip = ip

    def failure(self) -> int | None:
        """The attempt failed (it is already counted); the wait when this attempt locked the account or IP."""
        untils = [s.locked_until for s in (self._account, self._ip) if s.locked_until is not None]
        if not untils:
            return None
        return max(1, math.ceil(max(untils) - self._throttle.clock.now()))

    def success(self) -> None:
        """Clear the account's count and lock; give the IP its reservation back (successes do not count)."""
        store = self._throttle.store
        store.delete(self._account.counter)
        store.delete(_lock_key(self._account.limit.who))
        store.release(self._ip.counter)
        if self._ip.locked_until is not None:  # assumed to fail: the lock this attempt wrote goes
            restored = _Lock(0.0, self._ip.n, self._window)
            store.put(_lock_key(self._ip.limit.who), restored.encode(), self._throttle.record_ttl(self._window))


def _lock_key(who: str) -> str:
    return f"throttle:lock:{who}"


class LoginThrottle:
    def __init__(
        self, store: EphemeralStore, clock: Clock, *, max_failures: int, lockout_seconds: int, scope: str = ""
    ) -> None:
        self.store = store
        self.clock = clock
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds
        self._prefix = f"{scope}:" if scope else ""

    def _limits(self, username: str, ip: str) -> tuple[_Limit, _Limit]:
        account = "acct:" + hashlib.sha256(username.strip().casefold().encode()).hexdigest()[:32]
        return (
            _Limit(self._prefix + account, self.max_failures, ACCOUNT_CAP),
            _Limit(self._prefix + "ip:" + (ip[:64] or "unknown"), self.max_failures * IP_FACTOR, None),
        )

    def record_ttl(self, window: int, until: float = 0.0) -> float:
        return max(until, (window + 1) * WINDOW) - self.clock.now() + GRACE

    def _lock(self, limit: _Limit) -> _Lock | None:
        return _Lock.decode(self.store.get(_lock_key(limit.who)))

    def retry_after(self, username: str, ip: str) -> int | None:
        """Seconds to wait while the account or the IP is locked, else None (a read-only look)."""
        now = self.clock.now()
        untils = [lock.until for lim in self._limits(username, ip) if (lock := self._lock(lim)) and lock.until > now]
        return max(1, math.ceil(max(untils) - now)) if untils else None

    def begin(self, username: str, ip: str) -> Attempt | int:
        """Reserve one attempt before verifying anything: the attempt to settle, or the seconds to wait.

        NIST SP 800-63B §5.2.2 limits attempts, not completed ones: the reservation is atomic, so N
        simultaneous attempts admit no more than the threshold allows, and a refused one verifies nothing.
        """
        now = self.clock.now()
        window = int(now // WINDOW)
        limits = self._limits(username, ip)
        locks = [self._lock(lim) for lim in limits]
        untils = [lock.until for lock in locks if lock is not None and lock.until > now]
        if untils:
            return max(1, math.ceil(max(untils) - now))
        reserved: list[tuple[_Limit, str, int]] = []
        for lim, lock in zip(limits, locks, strict=True):
            allow = lock.allow if lock is not None and lock.window == window else lim.threshold
            counter = f"throttle:tries:{lim.who}:{window}"
            n = self.store.reserve(counter, allow, WINDOW + GRACE)  # NIST SP 800-63B §5.2.2: attempts, atomically
            if n is None:  # the allowed attempts are taken (some may still be verifying)
                for _, held, _ in reserved:
                    self.store.release(held)
                return max(1, math.ceil(self._lock_seconds(lim, allow, now, window)))
            reserved.append((lim, counter, n))
        slots = []
        for lim, counter, n in reserved:
            until = None
            if n >= lim.threshold:  # locks now, as if it will fail; a success lifts it (Attempt.success)
                until = now + self._lock_seconds(lim, n, now, window)
                self.store.put(_lock_key(lim.who), _Lock(until, n + 1, window).encode(), self.record_ttl(window, until))
            slots.append(_Slot(lim, counter, n, until))
        return Attempt(self, window, slots[0], slots[1])

    def _lock_seconds(self, lim: _Limit, n: int, now: float, window: int) -> float:
        """The lock that the ``n``-th failure in this window sets."""
        if lim.cap is not None and n >= lim.cap:
            return (window + 1) * WINDOW - now  # NIST SP 800-63B §5.2.2: <= 100 consecutive failures per account
        steps = min(max(n - lim.threshold, 0), 16)
        return min(self.lockout_seconds * 2**steps, max(MAX_LOCKOUT, self.lockout_seconds))
