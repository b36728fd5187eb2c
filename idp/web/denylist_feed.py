"""Per-process deny-list plumbing on the event loop.

* Keeps ``c.denylist`` fresh: a subscriber on the ephemeral store's channel (Redis
  pub/sub between instances) wakes a sync from SQL, and a poll re-reads the SQL version
  every ``sync_seconds`` in case a message was lost; a slower timer purges expired rows.
* Fans each applied change out to the open ``/deny-list/events`` streams as a signed SET.
  Each stream has a bounded buffer; a stream that falls behind is ended, and its client
  reconnects with ``Last-Event-ID`` and is replayed from SQL, so nothing is lost.

Streams end on shutdown. uvicorn runs the lifespan shutdown only after open responses
finish, so the feed also ends its streams as soon as the process receives SIGTERM/SIGINT
(chained in front of the server's own handler); otherwise a graceful shutdown would wait
out its timeout on every connected resource server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool

from idp.crypto import b64url_decode
from idp.errors import TemporarilyUnavailable
from idp.store.ephemeral import EphemeralStore
from idp.tokens.denylist import DenyList
from idp.tokens.denyset import DenyChange
from idp.tokens.secevent import CHANNEL, EVENT_DENY

log = logging.getLogger("idp.denylist")

PURGE_SECONDS = 60.0
RETRY_MS = 1000
WAKE = b""
"""Published on the channel at shutdown to wake this process's subscriber; every subscriber ignores it."""
RESYNC = b"event: resync\ndata: {}\n\n"
"""Sent when the client's Last-Event-ID cannot be replayed: it must GET /deny-list again."""


def format_event(version: int, token: str) -> bytes:
    return b"id: %d\nevent: deny\ndata: %s\n\n" % (version, token.encode())


def _peek_version(message: bytes) -> int | None:
    """The version a published SET announces (unverified: it only decides whether to read SQL)."""
    try:
        claims = orjson.loads(b64url_decode(message.split(b".")[1].decode()))
        return int(claims["events"][EVENT_DENY]["version"])
    except Exception:
        return None


class _Stream:
    __slots__ = ("buffer", "ended", "limit", "resync", "wake")

    def __init__(self, limit: int) -> None:
        self.buffer: deque[tuple[int, str]] = deque()
        self.wake = asyncio.Event()
        self.limit = limit
        self.ended = False
        self.resync = False

    def offer(self, items: list[tuple[int, str]] | None) -> None:
        if self.ended:
            return
        if items is None:
            self.resync = self.ended = True
        elif len(self.buffer) + len(items) > self.limit:
            self.ended = True  # too slow: the client reconnects and replays from SQL
        else:
            self.buffer.extend(items)
        self.wake.set()

    def end(self) -> None:
        self.ended = True
        self.wake.set()


class DenyFeed:
    def __init__(
        self,
        denylist: DenyList,
        ephemeral: EphemeralStore,
        *,
        heartbeat: float,
        buffer_limit: int = 1000,
        max_streams: int = 10_000,
    ) -> None:
        self._dl = denylist
        self._ephemeral = ephemeral
        self.heartbeat = heartbeat
        self._buffer_limit = buffer_limit
        self._max_streams = max_streams
        self._streams: set[_Stream] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._signals: dict[int, Any] = {}
        self._closing = self._stopping = False
        denylist.listeners.append(self._on_changes)

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._closing = self._stopping = False
        await run_in_threadpool(self._dl.sync)
        self._tasks = [asyncio.create_task(self._follow_channel()), asyncio.create_task(self._poll())]
        self._chain_exit_signals()

    async def stop(self) -> None:
        self._stopping = True
        self.close()
        self._restore_signals()
        channel, poll = self._tasks or (None, None)
        self._tasks = []
        if poll is not None:
            poll.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await poll
        if channel is not None:
            await self._stop_channel(channel)
        self._loop = None

    async def _stop_channel(self, task: asyncio.Task[None]) -> None:
        """Cancel the subscriber, and if that does not end it, wake it with a message: on Python 3.11 a cancel
        that lands while redis-py's ``wait_for`` completes a read is lost, and the task would never end."""
        for step, wait in (("cancel", 0.2), ("wake", 0.5), ("wake", 1.0)):
            if step == "cancel":
                task.cancel()
            else:
                with contextlib.suppress(Exception):
                    await run_in_threadpool(self._ephemeral.publish, CHANNEL, WAKE)
            done, _ = await asyncio.wait([task], timeout=wait)
            if done:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    task.result()
                return
        log.warning("deny-list: the pub/sub subscriber did not stop")

    def end_streams(self) -> None:
        """End every open stream; clients reconnect and resume with Last-Event-ID."""
        for stream in list(self._streams):
            stream.end()

    def close(self) -> None:
        """Shutting down: end every stream and refuse new ones, so clients reconnect to another instance."""
        self._closing = True
        self.end_streams()

    def _chain_exit_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        loop = self._loop
        assert loop is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue

            def handler(signum: int, frame: Any, previous: Callable[..., Any] = previous) -> None:
                with contextlib.suppress(RuntimeError):  # loop already closed
                    loop.call_soon_threadsafe(self.close)
                previous(signum, frame)

            signal.signal(sig, handler)
            self._signals[sig] = (handler, previous)

    def _restore_signals(self) -> None:
        for sig, (handler, previous) in self._signals.items():
            if threading.current_thread() is threading.main_thread() and signal.getsignal(sig) is handler:
                signal.signal(sig, previous)
        self._signals.clear()

    # -- keeping the snapshot fresh --------------------------------------------------------------
    async def _follow_channel(self) -> None:
        while not self._stopping:
            try:
                async with contextlib.aclosing(self._ephemeral.subscribe(CHANNEL)) as messages:
                    async for message in messages:
                        if self._stopping:
                            return
                        if message == WAKE:
                            continue
                        version = _peek_version(message)
                        if version is not None and version <= self._dl.version:
                            continue  # ours, or already read
                        # A thread: listeners may do I/O (a kid entry re-reads the keys).
                        await run_in_threadpool(self._catch_up, message.decode("ascii", "replace"))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("deny-list: subscription failed; resubscribing")
            await asyncio.sleep(0.2)  # the subscription ended (store closed, or we were too slow)
            with contextlib.suppress(Exception):
                await run_in_threadpool(self._dl.sync)

    def _catch_up(self, message: str) -> None:
        """The next version is applied from the signed message; a gap (or a bad SET) is read from SQL."""
        if not self._dl.apply_published(message):
            self._dl.sync()

    async def _poll(self) -> None:
        next_purge = time.monotonic() + PURGE_SECONDS
        while True:
            await asyncio.sleep(self._dl.sync_seconds)
            try:
                await run_in_threadpool(self._dl.sync_if_changed)
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + PURGE_SECONDS
                    await run_in_threadpool(self._dl.purge_expired)
            except Exception:
                log.exception("deny-list: SQL re-check failed; will retry")

    def _on_changes(self, changes: list[DenyChange] | None) -> None:
        """DenyList listener (any thread, in version order): sign here, hand over to the loop."""
        loop = self._loop
        if loop is None or not self._streams:
            return
        try:
            items = None if changes is None else [(ch.version, self._dl.signed(ch)) for ch in changes]
        except Exception:  # cannot sign (no usable key right now): make followers fetch the snapshot instead
            log.exception("deny-list: cannot sign the change events; asking followers to resynchronise")
            items = None
        with contextlib.suppress(RuntimeError):  # loop closed during shutdown
            loop.call_soon_threadsafe(self._deliver, items)

    def _deliver(self, items: list[tuple[int, str]] | None) -> None:
        for stream in list(self._streams):
            stream.offer(items)

    # -- the SSE stream --------------------------------------------------------------------------
    def open_stream(self, last_id: int | None) -> AsyncIterator[bytes]:
        if self._closing:
            raise TemporarilyUnavailable("Shutting down; reconnect shortly.")
        if len(self._streams) >= self._max_streams:
            raise TemporarilyUnavailable("Too many deny-list streams; retry later.")
        stream = _Stream(self._buffer_limit)
        self._streams.add(stream)  # before the replay reads SQL, so nothing falls between the two
        return self._events(stream, last_id)

    async def _events(self, stream: _Stream, last_id: int | None) -> AsyncIterator[bytes]:
        try:
            yield b"retry: %d\n: deny-list stream\n\n" % RETRY_MS
            if last_id is None:
                sent = self._dl.version
            else:
                found = await run_in_threadpool(self._replay, last_id)
                if found is None:
                    yield RESYNC
                    return
                for version, token in found:
                    yield format_event(version, token)
                sent = max([last_id, *(v for v, _ in found)])
            while True:
                if not stream.buffer and not stream.ended:
                    try:
                        await asyncio.wait_for(stream.wake.wait(), self.heartbeat)
                    except TimeoutError:
                        yield b": keepalive\n\n"
                        continue
                stream.wake.clear()
                while stream.buffer:
                    version, token = stream.buffer.popleft()
                    if version > sent:
                        yield format_event(version, token)
                        sent = version
                if stream.resync:
                    yield RESYNC
                if stream.ended:
                    return
        finally:
            self._streams.discard(stream)

    def _replay(self, last_id: int) -> list[tuple[int, str]] | None:
        found = self._dl.changes_since(last_id)
        if found is None:
            return None
        return [(ch.version, self._dl.signed(ch)) for ch in found[1]]


def feed_for(c: Any) -> DenyFeed:
    """The container's feed, created once (several apps may be built over one container in tests)."""
    feed = c.extras.get("denylist_feed")
    if feed is None:
        feed = c.extras["denylist_feed"] = DenyFeed(
            c.denylist, c.ephemeral, heartbeat=c.settings.denylist_heartbeat_seconds
        )
        c.extras.setdefault("startup_hooks", []).append(feed.start)
        c.extras.setdefault("shutdown_hooks", []).append(feed.stop)
    return feed
