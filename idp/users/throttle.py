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
  password spraying across many usernames. Successes do not clear it.

Counters live in fixed windows of the injected clock and lock deadlines are
stored values compared with it; store TTLs only collect garbage.
"""

from __future__ import annotations

import hashlib
import math

from idp.clock import Clock
from idp.store.ephemeral import EphemeralStore

WINDOW = 86_400
MAX_LOCKOUT = 900
ACCOUNT_CAP = 100
IP_FACTOR = 4


class LoginThrottle:
    def __init__(self, store: EphemeralStore, clock: Clock, *, max_failures: int, lockout_seconds: int) -> None:
        self._store = store
        self._clock = clock
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds

    @staticmethod
    def _account(username: str) -> str:
        return "acct:" + hashlib.sha256(username.strip().casefold().encode()).hexdigest()[:32]

    @staticmethod
    def _ip(ip: str) -> str:
        return "ip:" + (ip[:64] or "unknown")

    def _window(self, now: float) -> int:
        return int(now // WINDOW)

    def _locked_until(self, who: str, now: float) -> float | None:
        raw = self._store.get(f"throttle:lock:{who}")
        if raw is None:
            return None
        until = float(raw)
        return until if until > now else None

    def retry_after(self, username: str, ip: str) -> int | None:
        """Seconds to wait when the account or the IP is locked, else None. Check before verifying."""
        now = self._clock.now()
        untils = [u for who in (self._account(username), self._ip(ip)) if (u := self._locked_until(who, now))]
        return max(1, math.ceil(max(untils) - now)) if untils else None

    def failure(self, username: str, ip: str) -> int | None:
        """Count a failed sign-in; returns the wait when this failure locks the account or IP."""
        now = self._clock.now()
        waits = [
            self._count(self._account(username), self.max_failures, ACCOUNT_CAP, now),
            self._count(self._ip(ip), self.max_failures * IP_FACTOR, None, now),
        ]
        locked = [w for w in waits if w is not None]
        return max(locked) if locked else None

    def _count(self, who: str, threshold: int, cap: int | None, now: float) -> int | None:
        window = self._window(now)
        window_end = (window + 1) * WINDOW
        n = self._store.incr(f"throttle:fail:{who}:{window}", WINDOW + 60)
        if n < threshold:
            return None
        if cap is not None and n >= cap:
            seconds = window_end - now  # NIST SP 800-63B §5.2.2: <= 100 consecutive failures per account
        else:
            seconds = min(self.lockout_seconds * 2 ** min(n - threshold, 16), max(MAX_LOCKOUT, self.lockout_seconds))
        until = now + seconds
        self._store.put(f"throttle:lock:{who}", repr(until).encode(), seconds + 60)
        return max(1, math.ceil(seconds))

    def success(self, username: str) -> None:
        window = self._window(self._clock.now())
        self._store.delete(f"throttle:fail:{self._account(username)}:{window}")
