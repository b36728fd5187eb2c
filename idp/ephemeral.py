"""The ephemeral store: short-lived state shared by every worker and instance.

What lives here can be lost (a Redis flush) without losing anything durable:
single-use values with an atomic take (authorization codes, interactions),
replay caches (``private_key_jwt`` ``jti``), throttling counters, and
publish/subscribe (deny-list fan-out). Two implementations satisfy one
contract test: :class:`idp.store.memory.MemoryStore` (embedded default, one
process) and :class:`idp.store.redis_store.RedisStore`.

The API is synchronous because the protocol core is; only ``subscribe`` is async,
for long-lived streams on the event loop.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol


class StoreUnavailable(Exception):
    """The backing service cannot be reached; endpoints answer 503 temporarily_unavailable."""


class EphemeralStore(Protocol):
    def put(self, key: str, value: bytes, ttl: float) -> None:
        """Set ``key`` to ``value`` for ``ttl`` seconds (overwrites)."""
        ...

    def put_if_absent(self, key: str, value: bytes, ttl: float) -> bool:
        """Set only when absent; True when this call set it (replay caches, locks)."""
        ...

    def get(self, key: str) -> bytes | None: ...

    def take(self, key: str) -> bytes | None:
        """Atomically read and delete: of N concurrent callers exactly one gets the value."""
        ...

    def claim(self, marker: str, key: str, ttl: float) -> tuple[bool, bytes | None]:
        """Atomically: set ``marker`` for ``ttl`` seconds unless it exists and, if this call set it, take ``key``.

        Returns (set the marker, the value taken). One round trip for single-use secrets: the marker outlives
        the value, so a later caller learns that it was used, not merely that it is unknown.
        """
        ...

    def delete(self, key: str) -> None: ...

    def incr(self, key: str, window: float) -> int:
        """Increment a counter; the window (TTL) starts at the first increment."""
        ...

    def reserve(self, key: str, limit: int, window: float) -> int | None:
        """Atomically increment the counter unless it is already at ``limit``: the new count, or None.

        Of N concurrent callers at most ``limit`` minus the current count succeed (attempt limits that
        hold under concurrency: reserve before the expensive check, not after it). The window (TTL)
        starts at the first increment, as with ``incr``; a refused call changes nothing.
        """
        ...

    def release(self, key: str) -> None:
        """Decrement a counter, never below zero, keeping its TTL (give back a reservation)."""
        ...

    def ttl(self, key: str) -> float | None:
        """Seconds left, or None when the key is absent."""
        ...

    def publish(self, channel: str, message: bytes) -> int:
        """Deliver to every current subscriber of ``channel`` (in any process sharing the store); returns how many
        subscriptions it was delivered to."""
        ...

    def subscribe(self, channel: str) -> AsyncGenerator[bytes, None]:
        """Async iterator of messages published after the subscription started.

        The subscription starts when iteration starts; Redis confirms it over the
        network, so it is live shortly after the first ``__anext__``. Delivery is
        at-most-once: a reconnect or a too-slow consumer can lose messages, and a
        stream that *ends* means "resubscribe and resynchronise" (the store
        closed, or the consumer fell too far behind). Close the iterator
        (``contextlib.aclosing``) to unsubscribe promptly.
        """
        ...

    def ping(self) -> bool:
        """True when the backing service answers (readiness)."""
        ...

    def close(self) -> None: ...
