"""Follows the IdP's deny-list: ``GET /deny-list`` once, then the SSE stream of signed SETs.

* Each SET is verified against the cached JWKS (``typ: secevent+jwt``, pinned ``alg``,
  ``iss``) before it changes anything; changes apply in version order and repeats are
  ignored, so a replayed SET is harmless.
* The stream reconnects with exponential backoff and jitter, resuming with
  ``Last-Event-ID`` = our version, so nothing published while it was away is missed.
  ``event: resync`` (our version cannot be replayed) makes it fetch the snapshot again.
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
from collections.abc import Callable
from typing import Any

import httpx

from idp.clock import Clock, SystemClock
from idp.resource.jwks import JwksCache
from idp.resource.verifier import checked_header, decode_with
from idp.tokens.denyset import DenyEntry, DenySet
from idp.tokens.jwt import LEEWAY, TokenInvalid, check_claims
from idp.tokens.secevent import SET_TYP, change_from_claims

log = logging.getLogger("idp.resource")

PRUNE_SECONDS = 30.0


class DenyListFollower:
    def __init__(
        self,
        *,
        issuer: str,
        http: httpx.AsyncClient,
        jwks: JwksCache,
        base_url: str | None = None,
        stale_after: float = 25.0,
        reconnect_min: float = 0.1,
        reconnect_max: float = 5.0,
        clock: Clock | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        """``base_url``: where to reach the IdP when it differs from ``issuer`` (in-cluster address)."""
        base = (base_url or issuer).rstrip("/")
        self.snapshot_url = f"{base}/deny-list"
        self.events_url = f"{base}/deny-list/events"
        self.issuer = issuer
        self._http = http
        self._jwks = jwks
        self.stale_after = stale_after
        self._reconnect = (reconnect_min, reconnect_max)
        self._clock = clock or SystemClock()
        self._now = now
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
            try:
                if self._need_snapshot:
                    await self.fetch_snapshot()
                await self._follow_stream()
            except asyncio.CancelledError:
                raise
            except httpx.HTTPError as exc:
                log.warning("deny-list stream from %s: %s; reconnecting", self.events_url, exc or type(exc).__name__)
            except (ValueError, TokenInvalid) as exc:
                # An event we cannot verify or parse: take the whole list again over TLS before going on.
                self._need_snapshot = True
                log.warning("deny-list stream: %s; resynchronising", exc)
            except Exception:
                self._need_snapshot = True
                log.exception("deny-list follower failed; resynchronising")
            self.connected = False
            self.reconnects += 1
            if self.last_heard > heard_before:
                delay = self._reconnect[0]  # it was working: come back quickly
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, self._reconnect[1])

    # -- snapshot --------------------------------------------------------------------------------
    async def fetch_snapshot(self) -> None:
        resp = await self._http.get(self.snapshot_url, headers={"accept": "application/json"})
        resp.raise_for_status()
        doc = resp.json()
        version, raw = (doc.get("version"), doc.get("entries")) if isinstance(doc, dict) else (None, None)
        if not isinstance(version, int) or not isinstance(raw, list):
            raise ValueError("malformed deny-list document")
        self.denyset.replace([DenyEntry.from_public(e) for e in raw], version)
        self.snapshots += 1
        self._need_snapshot = False
        self._heard()
        self.synced.set()

    # -- stream ----------------------------------------------------------------------------------
    async def _follow_stream(self) -> None:
        headers = {
            "accept": "text/event-stream",
            "cache-control": "no-cache",
            "last-event-id": str(self.denyset.version),
        }
        timeout = httpx.Timeout(10.0, read=self.stale_after)
        async with self._http.stream("GET", self.events_url, headers=headers, timeout=timeout) as resp:
            resp.raise_for_status()
            if not resp.headers.get("content-type", "").startswith("text/event-stream"):
                raise ValueError("the deny-list stream is not text/event-stream")
            self.connected = True
            event, data = "message", []
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
        if event != "deny":
            return True
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
