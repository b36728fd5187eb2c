"""The deny-list feed: this process's :class:`DenyList` kept fresh, and the streams to resource servers.

* Keeps the deny-list fresh: a subscriber on the ephemeral store's channel (Redis
  pub/sub between instances) wakes a sync from SQL, and a poll re-reads the SQL version
  every ``sync_seconds`` in case a message was lost; a slower timer purges expired rows.
* Fans each applied change out to the open ``/deny-list/events`` streams as a signed SET.
  Each stream has a bounded buffer; a stream that falls behind is ended, and its client
  reconnects with ``Last-Event-ID`` and is replayed from SQL, so nothing is lost.
* A stream opens with what the client lacks: the short tail after its ``Last-Event-ID``
  (at most ``TAIL_LIMIT`` signed SETs, read from SQL), or else (no ``Last-Event-ID``, or
  one that is unknown, ahead or too far behind) the snapshot (every live entry and its
  version, one ``event: snapshot``), then live changes. The snapshot is built once
  per version from memory and shared with ``GET /deny-list``: a replay from 0 costs its
  bytes, not a signature and an SQL row per entry.
* Streams are capped per client (``IDP_DENYLIST_STREAMS_PER_CLIENT``, then 429) and per
  process (``IDP_DENYLIST_MAX_STREAMS``, then 503), both with ``Retry-After``. An open
  stream asks ``still_allowed`` every ``reauthorize_seconds`` and ends when it says no
  (:func:`still_allowed`: the client was disabled, deleted, lost the scope, or its secret or keys changed).
* Who may read: :func:`may_read`; the HTTP routes (``idp.web.denylist``) authenticate the client first.

Streams end on shutdown. uvicorn runs the lifespan shutdown only after open responses
finish, so the feed also ends its streams as soon as the process receives SIGTERM/SIGINT
(chained in front of the server's own handler); otherwise a graceful shutdown would wait
out its timeout on every connected resource server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import signal
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from anyio import to_thread

from idp.clients.model import Client
from idp.clock import Clock, SystemClock
from idp.denylist.entries import DenyChange
from idp.denylist.secevent import CHANNEL, peek_version
from idp.denylist.service import DenyList
from idp.ephemeral import EphemeralStore
from idp.errors import TemporarilyUnavailable, TooManyRequests
from idp.pubsub import follow_channel, stop_subscriber

log = logging.getLogger("idp.denylist")

PURGE_SECONDS = 60.0
RETRY_MS = 1000
RESYNC = b"event: resync\ndata: {}\n\n"
"""Sent (then the stream ends) when this process reloaded its list or cannot sign a change: reconnect."""
TAIL_LIMIT = 256
"""A Last-Event-ID more changes behind than this (or unknown, or ahead) gets the snapshot instead."""
BUSY_RETRY_AFTER = 5
"""Retry-After (s) on 429/503 for one stream too many."""
REAUTHORIZE_SECONDS = 30.0
FEED_SCOPE = "deny-list:read"
"""A client registered with this scope may read the deny-list feed."""


class ActiveClients(Protocol):
    def get_active(self, client_id: str) -> Client | None:
        """The registered client, or None when it is unknown, deleted or disabled."""
        ...


def may_read(client: Client | None) -> bool:
    """Who reads the feed: a confidential client, not disabled, registered with :data:`FEED_SCOPE`.
    The feed names users, sessions and clients: nobody else reads it."""
    return client is not None and not client.disabled and not client.is_public and FEED_SCOPE in client.scopes


def still_allowed(clients: ActiveClients, seen: Client) -> bool:
    """An open stream's client may still read: not disabled or deleted, still registered with the scope,
    and holding the credentials it connected with (a rotated secret or replaced keys end the stream)."""
    now = clients.get_active(seen.client_id)
    if now is None or not may_read(now):
        return False
    return (now.secret_digest, now.jwks) == (seen.secret_digest, seen.jwks)


def format_event(version: int, token: str) -> bytes:
    return b"id: %d\nevent: deny\ndata: %s\n\n" % (version, token.encode())


class StreamsBusy(TemporarilyUnavailable):
    """503 with Retry-After: this process holds as many streams as it may (or is shutting down)."""

    def __init__(self, description: str, retry_after: int) -> None:
        super().__init__(description)
        self.retry_after = retry_after


class TooManyStreams(TooManyRequests):
    """429 with Retry-After: this client holds as many streams as it may."""

    error = "too_many_streams"


@dataclass(frozen=True)
class Snapshot:
    """``GET /deny-list``'s document at ``version``; it holds until ``valid_until``, when an entry expires."""

    version: int
    valid_until: float
    body: bytes
    etag: str


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


class _Stream:
    __slots__ = ("buffer", "client_id", "ended", "limit", "resync", "still_allowed", "wake")

    def __init__(self, limit: int, client_id: str = "", still_allowed: Callable[[], bool] | None = None) -> None:
        self.client_id = client_id
        self.still_allowed = still_allowed
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
    """One per process: :meth:`start` on the event loop before serving, :meth:`stop` at shutdown."""

    def __init__(
        self,
        denylist: DenyList,
        ephemeral: EphemeralStore,
        *,
        heartbeat: float,
        clock: Clock | None = None,
        buffer_limit: int = 1000,
        max_streams: int = 1000,
        per_client: int = 4,
        reauthorize_seconds: float = REAUTHORIZE_SECONDS,
    ) -> None:
        self._dl = denylist
        self._ephemeral = ephemeral
        self._clock = clock or SystemClock()
        self.heartbeat = heartbeat
        self._buffer_limit = buffer_limit
        self._max_streams = max_streams
        self._per_client_limit = per_client
        self.reauthorize_seconds = reauthorize_seconds
        self._streams: set[_Stream] = set()
        self._per_client: dict[str, int] = {}
        self._snapshot: Snapshot | None = None
        self._snapshot_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._inbox: list[bytes] = []
        self._draining: asyncio.Task[None] | None = None
        self._signals: dict[int, Any] = {}
        self._closing = self._stopping = False
        denylist.listeners.append(self._on_changes)

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._closing = self._stopping = False
        await to_thread.run_sync(self._dl.sync)
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
            await stop_subscriber(channel, self._ephemeral, CHANNEL, "deny-list")
        draining, self._draining = self._draining, None
        if draining is not None:  # its thread cannot be cancelled: let it finish
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await draining
        self._loop = None

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
        await follow_channel(
            self._ephemeral, CHANNEL, self._on_message, self._resync, lambda: self._stopping, "deny-list"
        )

    async def _on_message(self, message: bytes) -> None:
        version = peek_version(message.rsplit(b"\n", 1)[-1])  # a batch: its last SET holds its last version
        if version is not None and version <= self._dl.version:
            return  # ours, or already read
        # Messages that arrive while a catch-up runs wait for the next one: one thread hop (listeners may do
        # I/O: a kid entry re-reads the keys) and one gap read for all of them, however many came.
        self._inbox.append(message)
        if self._draining is None or self._draining.done():
            self._draining = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while self._inbox:
            messages, self._inbox = self._inbox, []
            try:
                await to_thread.run_sync(self._catch_up, b"\n".join(messages).decode("ascii", "replace"))
            except Exception:  # the poll re-reads SQL within sync_seconds
                log.exception("deny-list: catching up with published changes failed")

    async def _resync(self) -> None:
        with contextlib.suppress(Exception):
            await to_thread.run_sync(self._dl.sync)

    def _catch_up(self, message: str) -> None:
        """The versions of the messages (signed SETs, one per line) are held from the SETs;
        the few before them this process lacks are read from SQL in one statement (:meth:`DenyList.advance`).
        A bad SET, or a gap too large to read that way, is a full sync from SQL."""
        if not self._dl.apply_published_batch(message.split("\n")):
            self._dl.sync()

    async def _poll(self) -> None:
        next_purge = time.monotonic() + PURGE_SECONDS
        while True:
            await asyncio.sleep(self._dl.sync_seconds)
            try:
                await to_thread.run_sync(self._dl.sync_if_changed)
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + PURGE_SECONDS
                    await to_thread.run_sync(self._dl.purge_expired)
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

    # -- the snapshot ----------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """The current document (blocking: it may re-check SQL); built once per version and expiry."""
        self._dl.maybe_sync()
        cached = self._snapshot
        if cached is not None and cached.version == self._dl.version and self._clock.now() < cached.valid_until:
            return cached
        with self._snapshot_lock:  # many streams reconnecting at once build it once
            cached = self._snapshot
            if cached is not None and cached.version == self._dl.version and self._clock.now() < cached.valid_until:
                return cached
            version, entries = self._dl.snapshot()
            body = orjson.dumps({"version": version, "entries": [e.public() for e in entries]})
            # The body changes when the version moves, or when its first entry expires and drops out.
            valid_until = min((e.expires_at for e in entries), default=math.inf)
            self._snapshot = Snapshot(version, valid_until, body, _etag(body))
            return self._snapshot

    # -- the SSE stream --------------------------------------------------------------------------
    def open_stream(
        self, last_id: int | None, client_id: str, still_allowed: Callable[[], bool] | None = None
    ) -> tuple[AsyncIterator[bytes], Callable[[], None]]:
        """(events, release) for one more stream of ``client_id``; ``release`` (idempotent) frees its slot
        and must run when the response ends, whether or not the events were ever iterated.
        ``still_allowed()`` (blocking, run in a thread) is asked every ``reauthorize_seconds``."""
        if self._closing:
            raise StreamsBusy("Shutting down; reconnect shortly.", 1)
        if len(self._streams) >= self._max_streams:
            raise StreamsBusy("Too many deny-list streams on this instance; retry later.", BUSY_RETRY_AFTER)
        if self._per_client.get(client_id, 0) >= self._per_client_limit:
            raise TooManyStreams(
                BUSY_RETRY_AFTER, f"This client already has {self._per_client_limit} deny-list streams open."
            )
        stream = _Stream(self._buffer_limit, client_id, still_allowed)
        self._streams.add(stream)  # before the replay reads, so nothing falls between the two
        self._per_client[client_id] = self._per_client.get(client_id, 0) + 1
        return self._events(stream, last_id), lambda: self._release(stream)

    def _release(self, stream: _Stream) -> None:
        if stream not in self._streams:
            return
        self._streams.discard(stream)
        left = self._per_client.get(stream.client_id, 1) - 1
        if left > 0:
            self._per_client[stream.client_id] = left
        else:
            self._per_client.pop(stream.client_id, None)

    def streams_of(self, client_id: str) -> int:
        return self._per_client.get(client_id, 0)

    async def _events(self, stream: _Stream, last_id: int | None) -> AsyncIterator[bytes]:
        try:
            yield b"retry: %d\n: deny-list stream\n\n" % RETRY_MS
            tail = None if last_id is None else await to_thread.run_sync(self._tail, last_id)
            if tail is None:  # nothing to resume from, or too far behind: the whole list, then live
                snap = await to_thread.run_sync(self.snapshot)
                yield b"id: %d\nevent: snapshot\ndata: " % snap.version
                yield snap.body  # shared, never copied per stream
                yield b"\n\n"
                sent = snap.version
            else:
                for version, token in tail:
                    yield format_event(version, token)
                sent = max([last_id or 0, *(v for v, _ in tail)])
            recheck = time.monotonic() + self.reauthorize_seconds
            while True:
                if stream.still_allowed is not None and time.monotonic() >= recheck:
                    recheck = time.monotonic() + self.reauthorize_seconds
                    if not await to_thread.run_sync(stream.still_allowed):
                        return  # no longer allowed since it connected: it learns nothing more
                if not stream.buffer and not stream.ended:
                    try:
                        await asyncio.wait_for(stream.wake.wait(), min(self.heartbeat, self.reauthorize_seconds))
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
            self._release(stream)

    def _tail(self, last_id: int) -> list[tuple[int, str]] | None:
        """Signed changes after ``last_id``, or None when the snapshot is the answer (unknown, ahead, too far
        behind, or a change cannot be signed right now: the snapshot needs no signature)."""
        found = self._dl.changes_since(last_id, TAIL_LIMIT)
        if found is None:
            return None
        try:
            return [(ch.version, self._dl.signed(ch)) for ch in found[1]]
        except Exception:
            log.exception("deny-list: cannot sign the replayed changes; sending the snapshot instead")
            return None
