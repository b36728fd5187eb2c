"""Where DPoP proof ``jti``s are remembered (RFC 9449 §11.1), beside the rest of the ephemeral state.

With Redis every worker and instance shares one replay cache (``SET NX`` with the proof's lifetime);
an outage refuses proofs (503), it never lets one through twice. The in-process store gets a
bounded :class:`idp.resource.dpop.MemoryReplayCache`, one per store, so everything that shares the
store (the threads of the one embedded process) shares it too.
"""

from __future__ import annotations

import weakref

from idp.clock import Clock
from idp.ephemeral import EphemeralStore, StoreUnavailable
from idp.resource.dpop import MemoryReplayCache, ReplayCache, ReplayCacheUnavailable
from idp.store.memory import MemoryStore

PREFIX = "dpop-jti:"
_IN_PROCESS: weakref.WeakKeyDictionary[MemoryStore, MemoryReplayCache] = weakref.WeakKeyDictionary()


class StoreReplayCache:
    """:class:`idp.resource.dpop.ReplayCache` over the shared ephemeral store."""

    def __init__(self, store: EphemeralStore) -> None:
        self._store = store

    def first_use(self, key: str, ttl_seconds: int) -> bool:
        try:
            return self._store.put_if_absent(PREFIX + key, b"1", max(1, ttl_seconds))
        except StoreUnavailable as exc:
            raise ReplayCacheUnavailable(str(exc)) from None


def replay_cache(store: EphemeralStore, clock: Clock, *, max_entries: int) -> ReplayCache:
    if isinstance(store, MemoryStore):
        cache = _IN_PROCESS.get(store)
        if cache is None:
            cache = _IN_PROCESS.setdefault(store, MemoryReplayCache(max_entries, now=clock.now))
        return cache
    return StoreReplayCache(store)
