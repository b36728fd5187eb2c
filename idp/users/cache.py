"""A short-lived read cache in front of the user store, for the per-request lookups of hot endpoints.

userinfo, introspection, code exchange and refresh each read the user by id; uncached that SELECT was most
of their cost (bench/RESULTS.md). Entries live ``ttl`` seconds and are dropped on every write through this
process. Another worker or instance may serve a profile up to ``ttl`` old; disabling a user does not depend
on it, because it also ends the user's sessions, revokes their grants and deny-lists their tokens.
"""

from __future__ import annotations

import threading

from idp.clock import Clock
from idp.users.directory import User, UserStore


class CachedUserStore:
    def __init__(self, inner: UserStore, clock: Clock, *, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self._inner = inner
        self._clock = clock
        self._ttl = ttl
        self._max = max_entries
        self._lock = threading.Lock()
        self._by_id: dict[str, tuple[float, User | None]] = {}

    def get(self, user_id: str) -> User | None:
        now = self._clock.now()
        hit = self._by_id.get(user_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        user = self._inner.get(user_id)
        with self._lock:
            if len(self._by_id) >= self._max:
                self._by_id.clear()
            self._by_id[user_id] = (now + self._ttl, user)
        return user

    def by_username(self, username: str) -> User | None:
        return self._inner.by_username(username)

    def list(self) -> list[User]:
        return self._inner.list()

    def save(self, user: User) -> None:
        self._inner.save(user)
        with self._lock:
            self._by_id.pop(user.id, None)
