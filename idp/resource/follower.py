"""Follows the IdP's deny-list stream: the snapshot, then the signed SETs, as an authenticated client.

* The feed is read as the resource server's own client (``credentials``: a client registered
  with the scope ``deny-list:read``; see :mod:`idp.resource.credentials`). A 401/403 is logged
  as what it is (wrong credentials, missing scope) and retried at the slowest pace; a 429/503
  waits at least its ``Retry-After``.
* The first connection sends no ``Last-Event-ID``: the IdP opens with ``event: snapshot``
  (every live entry and its version), which replaces our copy, then the changes. Later ones
  resume with ``Last-Event-ID`` = our version: a short gap is replayed as SETs, a long one
  as a snapshot.
* Each SET is verified against the cached JWKS (``typ: secevent+jwt``, pinned ``alg``,
  ``iss``) before it changes anything; changes apply in version order and repeats are
  ignored, so a replayed SET is harmless. The snapshot is trusted as the authenticated TLS
  connection that carries it is (it would not fit in a JWS).
* The stream reconnects with exponential backoff and jitter, resuming with
  ``Last-Event-ID`` = our version, so nothing published while it was away is missed.
  ``event: resync`` (or an event we cannot verify) makes it start again from a snapshot.
* ``last_heard`` moves with every line received, heartbeats included. When it is older
  than ``stale_after`` the copy can no longer be trusted (``is_stale``); what to do then
  is the caller's policy (see ``idp.resource.middleware``). The read timeout equals
  ``stale_after``, so a half-open connection is dropped and redialled too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson

from idp.clock import Clock, SystemClock
from idp.denylist.denyset import DenySet
from idp.denylist.entries import DenyEntry
from idp.denylist.secevent import SET_TYP, change_from_claims
from idp.resource.credentials import ClientCredentials
from idp.resource.jwks import JwksCache
from idp.resource.verifier import checked_header, decode_with
from idp.tokens.jwt import LEEWAY, TokenInvalid, check_claims

log = logging.getLogger("idp.resource")

PRUNE_SECONDS = 30.0
MAX_RETRY_AFTER = 60.0


class FeedRefused(Exception):
    """The IdP answered the stream request with an error status (``retry_after``: its Retry-After, s)."""

    def __init__(self, status: int, retry_after: float = 0.0) -> None:
        super().__init__(status)
        self.status = status
        self.retry_after = retry_after


class DenyListFollower:
    def __init__(
        self,
        *,
        issuer: str,
        http: httpx.AsyncClient,
        jwks: JwksCache,
        credentials: ClientCredentials,
        base_url: str | None = None,
        stale_after: float = 25.0,
        reconnect_min: float = 0.1,
        reconnect_max: float = 5.0,
        clock: Clock | None = None,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``base_url``: where to reach the IdP when it differs from ``issuer`` (in-cluster address)."""
        base = (base_url or issuer).rstrip("/")
        self.events_url = f"{base}/deny-list/events"
        self.issuer = issuer
        self._http = http
        self._credentials = credentials
        self._jwks = jwks
        self.stale_after = stale_after
        self._reconnect = (reconnect_min, reconnect_max)
        self._clock = clock or SystemClock()
        self._now = now
        self._sleep = sleep  # between reconnects
        self.denyset = DenySet()
        self.last_heard = -float("inf")
        self.synced = asyncio.Event()
        self.connected = False
        self.reconnects = 0
        self.snapshots = 0
        self._need_snapshot = True
        self._task: asyncio.Task[None] | None = None
        self._next_prune = 0.0

    # -- what the middleware asks ----------------------------------------------------------------
    def is_stale(self) -> bool:
        return self._now() - self.last_heard > self.stale_after

    def is_denied(self, claims: dict[str, Any], kid: str | None = None) -> bool:
        return self.denyset.is_denied(claims, kid)

    @property
    def version(self) -> int:
        return self.denyset.version

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self, wait: float = 5.0) -> None:
        """Start following; wait up to ``wait`` s for the first snapshot (stale until then)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="idp-denylist-follower")
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.synced.wait(), wait)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.connected = False

    async def _run(self) -> None:
        delay = self._reconnect[0]
        while True:
            heard_before = self.last_heard
            wait_at_least = 0.0
            try:
                await self._follow_stream()
            except asyncio.CancelledError:
                raise
            except FeedRefused as exc:
                wait_at_least = exc.retry_after
                if exc.status in (401, 403):
                    delay = self._reconnect[1]  # will not heal by itself: the slowest pace
                    log.error(
                        "deny-list stream from %s: %d (%s); the copy goes stale", self.events_url, exc.status,
                        "wrong client credentials" if exc.status == 401 else "the client lacks deny-list:read",
                    )  # fmt: skip
                else:
                    log.warning("deny-list stream from %s: %d; reconnecting", self.events_url, exc.status)
            except httpx.HTTPError as exc:
                log.warning("deny-list stream from %s: %s; reconnecting", self.events_url, exc or type(exc).__name__)
            except (ValueError, TokenInvalid) as exc:
                # An event we cannot verify or parse: take the whole list again before going on.
                self._need_snapshot = True
                log.warning("deny-list stream: %s; resynchronising", exc)
            except Exception:
                self._need_snapshot = True
                log.exception("deny-list follower failed; resynchronising")
            self.connected = False
            self.reconnects += 1
            if self.last_heard > heard_before:
                delay = self._reconnect[0]  # it was working: come back quickly
            await self._sleep(max(random.uniform(delay / 2, delay), wait_at_least))
            delay = min(delay * 2, self._reconnect[1])

    # -- snapshot --------------------------------------------------------------------------------
    def apply_snapshot(self, doc: Any) -> None:
        """Replace the copy with a snapshot document ``{"version": N, "entries": [...]}``; ValueError if malformed."""
        version, raw = (doc.get("version"), doc.get("entries")) if isinstance(doc, dict) else (None, None)
        if not isinstance(version, int) or isinstance(version, bool) or not isinstance(raw, list):
            raise ValueError("malformed deny-list snapshot")
        self.denyset.replace([DenyEntry.from_public(e) for e in raw], version)
        self.snapshots += 1
        self._need_snapshot = False
        self._heard()
        self.synced.set()

    # -- stream ----------------------------------------------------------------------------------
    async def _follow_stream(self) -> None:
        headers = {"accept": "text/event-stream", "cache-control": "no-cache"}
        if not self._need_snapshot:  # without it the stream opens with the snapshot
            headers["last-event-id"] = str(self.denyset.version)
        timeout = httpx.Timeout(10.0, read=self.stale_after)
        options = self._credentials.request_options()  # a fresh assertion per connection (private_key_jwt)
        method = self._credentials.method
        async with self._http.stream(method, self.events_url, headers=headers, timeout=timeout, **options) as resp:
            if resp.status_code != 200:
                raise FeedRefused(resp.status_code, _retry_after(resp.headers.get("retry-after")))
            if not resp.headers.get("content-type", "").startswith("text/event-stream"):
                raise ValueError("the deny-list stream is not text/event-stream")
            self.connected = True
            event = "message"
            data: list[str] = []
            async for line in resp.aiter_lines():
                self._heard()
                if line == "":
                    if data and not await self._dispatch(event, "\n".join(data)):
                        return
                    event, data = "message", []
                    continue
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "event":
                    event = value
                elif name == "data":
                    data.append(value)
        raise httpx.RemoteProtocolError("the deny-list stream ended")

    async def _dispatch(self, event: str, data: str) -> bool:
        """Apply one event; False ends this connection (resynchronise first)."""
        if event == "resync":
            self._need_snapshot = True
            return False
        if event == "snapshot":
            self.apply_snapshot(orjson.loads(data))
            return True
        if event != "deny" or self._need_snapshot:
            return True  # a change before any snapshot has nothing to apply to
        change = change_from_claims(await self.verify_set(data))
        if change.version > self.denyset.version:
            self.denyset.apply(change)
            if change.entry is not None and change.entry.kind == "kid":
                # A compromised key: forget it now, and learn the key that replaces it.
                self._jwks.evict(change.entry.value)
                await self._jwks.refresh(unconditional=True)
        now = self._now()
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_SECONDS
            self.denyset.prune(self._clock.now())
        return True

    async def verify_set(self, token: str) -> dict[str, Any]:
        """Claims of a SET signed by our issuer (RFC 8417 §2.3 typ; pinned alg per kid)."""
        header, kid = checked_header(token, {SET_TYP})
        claims = decode_with(token, header, await self._jwks.get(kid, force=True))
        # SETs carry no exp (they report what happened); versions order them instead.
        check_claims(claims, issuer=self.issuer, audience=None, now=self._clock.now(), leeway=LEEWAY,
                     require=("iss", "iat", "jti", "events"), allow_expired=True)  # fmt: skip
        return claims

    def _heard(self) -> None:
        self.last_heard = self._now()


def _retry_after(value: str | None) -> float:
    """Retry-After in seconds (RFC 9110 §10.2.3; the HTTP-date form counts as none), capped."""
    try:
        seconds = float(value or 0)
    except ValueError:
        return 0.0
    return min(seconds, MAX_RETRY_AFTER) if seconds > 0 else 0.0  # NaN and negatives: none
