"""In-process ephemeral store: the embedded default for a single process.

Everything lives in one dict guarded by a ``threading.Lock`` (protocol code runs
in threadpool threads). Expiry follows the injected :class:`~idp.clock.Clock`:
expired entries are dropped lazily when touched, and a sweep runs whenever the
clock has moved ``SWEEP_INTERVAL`` seconds past the last one or the dict has
doubled since it, so memory stays bounded by what is live without an O(n) scan
on every call.

Publish/subscribe fans out to per-subscriber ``asyncio.Queue`` objects, each
bound to the event loop its subscriber iterates on. ``publish`` may run on any
thread, so it hands messages over with ``loop.call_soon_threadsafe``.

Overflow policy: a subscriber whose queue is full is *closed*, not silently
trimmed. Its iterator yields what was already queued and then ends. Dropping
the oldest messages would silently lose deny-list entries; an ending stream
is visible, and the consumer reconnects and resynchronises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
from collections.abc import AsyncGenerator, Callable

from idp.clock import Clock, SystemClock

__all__ = ["MemoryStore"]

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 60.0
"""Clock seconds between full sweeps of expired entries."""

MIN_SWEEP_SIZE = 1024
"""Size below which growth alone never triggers a sweep."""

MIN_TTL = 0.001
"""Same floor as RedisStore (1 ms), so both behave alike for tiny or zero TTLs."""


def _check_ttl(ttl: float) -> float:
    if not math.isfinite(ttl):
        raise ValueError("ttl must be a finite number of seconds")
    return max(float(ttl), MIN_TTL)


def _check_value(value: bytes) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"value must be bytes, not {type(value).__name__}")
    return bytes(value)


class _Subscriber:
    """One subscription: a bounded queue on the subscriber's event loop.

    ``deliver`` and ``end`` run on that loop only (via ``call_soon_threadsafe``),
    so the queue is never touched from another thread.
    """

    __slots__ = ("_on_end", "ended", "loop", "queue")

    def __init__(self, loop: asyncio.AbstractEventLoop, maxsize: int, on_end: Callable[[_Subscriber], None]) -> None:
        self.loop = loop
        # ``None`` is the end-of-stream sentinel.
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize)
        self.ended = False
        self._on_end = on_end

    def deliver(self, message: bytes) -> None:
        if self.ended:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("ephemeral store: subscriber queue full, closing the slow subscriber")
            self.end()

    def end(self) -> None:
        if self.ended:
            return
        self.ended = True
        self._on_end(self)
        # Wake a consumer blocked on an empty queue. A full queue needs no
        # sentinel: the consumer drains it and then sees ``ended``.
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)


class MemoryStore:
    """Thread-safe, single-process :class:`~idp.ephemeral.EphemeralStore`."""

    def __init__(self, clock: Clock | None = None, *, max_queued: int = 1000) -> None:
        """``max_queued``: messages buffered per subscriber before it is closed as too slow."""
        if max_queued < 1:
            raise ValueError("max_queued must be at least 1")
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._max_queued = max_queued
        self._lock = threading.Lock()
        # key -> (value, expires_at in clock seconds)
        self._data: dict[str, tuple[bytes, float]] = {}
        self._subs: dict[str, set[_Subscriber]] = {}
        self._next_sweep = self._clock.now() + SWEEP_INTERVAL
        self._sweep_at_size = MIN_SWEEP_SIZE

    # -- key/value ---------------------------------------------------------

    def _live(self, key: str, now: float) -> tuple[bytes, float] | None:
        """The unexpired entry for ``key`` (dropping it if expired). Caller holds the lock."""
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._data[key]
            return None
        return entry

    def _store(self, key: str, value: bytes, expires_at: float, now: float) -> None:
        """Write an entry, sweeping when due. Caller holds the lock."""
        self._data[key] = (value, expires_at)
        if now >= self._next_sweep or len(self._data) >= self._sweep_at_size:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        expired = [k for k, (_, exp) in self._data.items() if exp <= now]
        for k in expired:
            del self._data[k]
        self._next_sweep = now + SWEEP_INTERVAL
        # Doubling keeps the amortised cost of sweeping O(1) per write.
        self._sweep_at_size = max(MIN_SWEEP_SIZE, 2 * len(self._data))

    def put(self, key: str, value: bytes, ttl: float) -> None:
        value, ttl = _check_value(value), _check_ttl(ttl)
        with self._lock:
            now = self._clock.now()
            self._store(key, value, now + ttl, now)

    def put_if_absent(self, key: str, value: bytes, ttl: float) -> bool:
        value, ttl = _check_value(value), _check_ttl(ttl)
        with self._lock:
            now = self._clock.now()
            if self._live(key, now) is not None:
                return False
            self._store(key, value, now + ttl, now)
            return True

    def get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._live(key, self._clock.now())
            return None if entry is None else entry[0]

    def take(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._live(key, self._clock.now())
            if entry is None:
                return None
            del self._data[key]
            return entry[0]

    def claim(self, marker: str, key: str, ttl: float) -> tuple[bool, bytes | None]:
        ttl = _check_ttl(ttl)
        with self._lock:
            now = self._clock.now()
            if self._live(marker, now) is not None:
                return False, None
            self._store(marker, b"1", now + ttl, now)
            entry = self._live(key, now)
            if entry is None:
                return True, None
            del self._data[key]
            return True, entry[0]

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def incr(self, key: str, window: float) -> int:
        """Like Redis INCR: the counter is stored as its decimal bytes (``get`` returns b"3")."""
        window = _check_ttl(window)
        with self._lock:
            now = self._clock.now()
            entry = self._live(key, now)
            if entry is None:
                self._store(key, b"1", now + window, now)
                return 1
            value, expires_at = entry
            try:
                count = int(value) + 1
            except ValueError:
                raise ValueError("value is not an integer") from None
            self._data[key] = (str(count).encode(), expires_at)
            return count

    def reserve(self, key: str, limit: int, window: float) -> int | None:
        window = _check_ttl(window)
        with self._lock:
            now = self._clock.now()
            entry = self._live(key, now)
            count = 0 if entry is None else int(entry[0])
            if count >= limit:
                return None
            if entry is None:
                self._store(key, b"1", now + window, now)
            else:
                self._data[key] = (str(count + 1).encode(), entry[1])
            return count + 1

    def release(self, key: str) -> None:
        with self._lock:
            entry = self._live(key, self._clock.now())
            if entry is not None and int(entry[0]) > 0:
                self._data[key] = (str(int(entry[0]) - 1).encode(), entry[1])

    def ttl(self, key: str) -> float | None:
        with self._lock:
            now = self._clock.now()
            entry = self._live(key, now)
            return None if entry is None else entry[1] - now

    # -- publish/subscribe -------------------------------------------------

    def publish(self, channel: str, message: bytes) -> int:
        """Thread-safe; delivery happens on each subscriber's loop, in publish order."""
        message = _check_value(message)
        with self._lock:
            subs = list(self._subs.get(channel, ()))
        delivered = 0
        for sub in subs:
            if sub.ended:
                continue
            try:
                sub.loop.call_soon_threadsafe(sub.deliver, message)
                delivered += 1
            except RuntimeError:
                # Its loop is closed: nobody will ever read this subscription.
                self._discard(channel, sub)
        return delivered

    def subscribe(self, channel: str) -> AsyncGenerator[bytes, None]:
        """Messages published after iteration starts (the first ``__anext__``).

        The iterator ends when the subscriber falls ``max_queued`` messages behind
        or the store is closed; close it (``aclose``/``aclosing``) to unsubscribe.
        """
        return self._subscription(channel)

    async def _subscription(self, channel: str) -> AsyncGenerator[bytes, None]:
        loop = asyncio.get_running_loop()
        sub = _Subscriber(loop, self._max_queued, lambda s: self._discard(channel, s))
        with self._lock:
            self._subs.setdefault(channel, set()).add(sub)
        try:
            while True:
                if sub.ended and sub.queue.empty():
                    return
                message = await sub.queue.get()
                if message is None:
                    return
                yield message
        finally:
            sub.ended = True
            self._discard(channel, sub)

    def _discard(self, channel: str, sub: _Subscriber) -> None:
        with self._lock:
            subs = self._subs.get(channel)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[channel]

    # -- lifecycle ---------------------------------------------------------

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        """Drop all entries and end every active subscription."""
        with self._lock:
            self._data.clear()
            subs = [sub for group in self._subs.values() for sub in group]
            self._subs.clear()
        for sub in subs:
            with contextlib.suppress(RuntimeError):  # loop already closed
                sub.loop.call_soon_threadsafe(sub.end)
