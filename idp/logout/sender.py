"""The back-channel logout sender: delivers the outbox (:mod:`idp.store.logout_repo`) at least once.

Each round claims the due rows (a lease; a crashed instance's rows come back when it passes), and sends each
in a task of its own: a slow or dead receiver holds only its own client's slots (``per_client``), never the
others'. A POST is ``application/x-www-form-urlencoded`` ``logout_token=…`` (BCL §2.5), sent to the vetted
address (:mod:`idp.logout.target`), never following a redirect, reading at most :data:`MAX_RESPONSE` bytes
of the answer, within ``timeout`` seconds. A 200 or 204 is delivered (BCL §2.8); anything else is retried
with exponential backoff and jitter until ``horizon`` seconds after the end, then the row is dead (an
operator lists and retries those: ``idp logout deliveries``).

A row is sent only while its lease outlasts the attempt (``timeout`` plus a margin); its outcome is written
only while the claim still holds. With a graceful stop (``stop``) the in-flight attempts finish and are
recorded, so a restart sends nothing twice to a receiver that answered.

Nothing secret is logged: not the token, not the response body; the URL's query is left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import httpx
from starlette.concurrency import run_in_threadpool

from idp.clients.model import Client
from idp.clock import Clock
from idp.logout.target import Target, TargetRefused, resolve
from idp.store.logout_repo import Delivery
from idp.tokens.logout_token import LogoutTokens

log = logging.getLogger("idp.logout")

MAX_RESPONSE = 4096  # bytes of a receiver's answer read (and thrown away): BCL §2.8 defines no body
MARGIN = 10.0  # seconds of lease beyond the timeout an attempt needs before it may start
BACKOFF_BASE = 2.0
BACKOFF_CAP = 3600.0
SUCCESS = frozenset({200, 204})  # BCL §2.8


class Outbox(Protocol):
    """:class:`idp.store.logout_repo.SqlLogoutOutbox`, as far as sending goes."""

    def claim(self, now: float, *, limit: int, lease: float, exclude: Any = ()) -> tuple[str, list[Delivery]]: ...
    def delivered(self, delivery_id: str, token: str, now: float, status: int) -> bool: ...
    def failed(
        self, delivery_id: str, token: str, *, error: str, status: int | None, retry_at: float | None
    ) -> bool: ...
    def release(self, delivery_ids: Any, token: str, now: float) -> None: ...


class ClientLookup(Protocol):
    def get(self, client_id: str) -> Client | None: ...


class MetricsSink(Protocol):
    def logout_delivery(self, result: str, latency: float | None = None, n: int = 1) -> None: ...


class AuditSink(Protocol):
    def record(self, action: str, *, actor: str = ..., subject: str | None = ..., **detail: Any) -> None: ...


@dataclass
class SenderSettings:
    timeout: float = 5.0
    horizon: float = 86_400.0
    per_client: int = 4
    concurrency: int = 32
    poll_seconds: float = 1.0
    allow_private: bool = False
    allow_loopback: bool = False
    lease: float = field(init=False)

    def __post_init__(self) -> None:
        self.lease = self.timeout + 2 * MARGIN


def backoff(attempts: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: 2, 4, 8 … s capped at an hour, each
    drawn from its upper half (jitter, so receivers that failed together are not retried together)."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempts - 1))
    return ceiling * (0.5 + 0.5 * rng())


def _where(uri: str) -> str:
    """The URI without its query, for logs and errors (a query may carry something the RP keeps secret)."""
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class LogoutSender:
    def __init__(
        self,
        outbox: Outbox,
        clients: ClientLookup,
        tokens: LogoutTokens,
        clock: Clock,
        metrics: MetricsSink,
        audit: AuditSink,
        settings: SenderSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Callable[[str], Target] | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._outbox = outbox
        self._clients = clients
        self._tokens = tokens
        self._clock = clock
        self._metrics = metrics
        self._audit = audit
        self.settings = settings
        self._transport = transport
        self._resolver = resolver
        self._rng = rng
        self._in_flight: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self._stopping = False

    # -- life cycle ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._http = self._client()
        self._stopping = False
        self._runner = asyncio.create_task(self._run(), name="backchannel logout sender")

    async def stop(self) -> None:
        """Claim nothing more; let the attempts under way finish (each within its timeout) and record them."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        if self._runner is not None:
            # Let a claim under way finish (its rows are then sent and recorded below), rather than cancel it
            # and leave them leased to nobody until the lease passes.
            try:
                await asyncio.wait_for(asyncio.shield(self._runner), self.settings.timeout + MARGIN)
            except TimeoutError:
                self._runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._runner
        await self.drain()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def abort(self) -> None:
        """Stop at once, as a crash would: attempts under way are dropped unrecorded (tests of the lease)."""
        self._stopping = True
        for task in [*self._tasks, *([self._runner] if self._runner else [])]:
            task.cancel()
        await asyncio.gather(*self._tasks, *([self._runner] if self._runner else []), return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def wake(self) -> None:
        """Look for due rows now (thread-safe: the end of a session is written in a worker thread)."""
        loop, event = self._loop, self._wake
        if loop is None or event is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(event.set)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _client(self) -> httpx.AsyncClient:
        s = self.settings
        return httpx.AsyncClient(
            transport=self._transport,
            follow_redirects=False,  # never: a redirect could point anywhere the vetting did not look
            timeout=httpx.Timeout(s.timeout),
            limits=httpx.Limits(max_connections=s.concurrency, max_keepalive_connections=s.concurrency),
            trust_env=False,  # no proxy from the environment between the OP and the receiver's vetted address
        )

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            try:
                await self.dispatch()
            except Exception:
                log.exception("back-channel logout: a claim round failed; will retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_seconds)
            self._wake.clear()

    # -- one round -----------------------------------------------------------------------------------------
    async def dispatch(self) -> list[asyncio.Task[None]]:
        """Claim what is due and start sending it; returns the tasks started (tests await them)."""
        s = self.settings
        free = s.concurrency - len(self._tasks)
        if free <= 0 or self._stopping:
            return []
        if self._http is None:
            self._http = self._client()
        saturated = [cid for cid, n in self._in_flight.items() if n >= s.per_client]
        now = self._clock.now()
        token, rows = await run_in_threadpool(self._outbox.claim, now, limit=free, lease=s.lease, exclude=saturated)
        started, surplus = [], []
        for d in rows:
            if self._in_flight.get(d.client_id, 0) >= s.per_client:
                surplus.append(d.id)  # over this client's limit: back to the queue, unattempted
                continue
            self._in_flight[d.client_id] = self._in_flight.get(d.client_id, 0) + 1
            task = asyncio.create_task(self._attempt(d, token, now + s.lease))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started.append(task)
        if surplus:
            await run_in_threadpool(self._outbox.release, surplus, token, now)
        return started

    async def _attempt(self, d: Delivery, token: str, lease_until: float) -> None:
        try:
            await self._send(d, token, lease_until)
        except Exception as exc:
            log.exception("back-channel logout: delivery %s to client %s failed unexpectedly", d.id, d.client_id)
            with contextlib.suppress(Exception):
                await self._finish(d, token, error=f"internal error ({exc.__class__.__name__})", status=None)
        finally:
            left = self._in_flight.get(d.client_id, 1) - 1
            if left <= 0:
                self._in_flight.pop(d.client_id, None)
            else:
                self._in_flight[d.client_id] = left
            if self._wake is not None:
                self._wake.set()  # a slot is free: this client's next row may go

    async def _send(self, d: Delivery, token: str, lease_until: float) -> None:
        s = self.settings
        if lease_until - self._clock.now() < s.timeout + MARGIN:
            return  # the lease would run out mid-attempt: leave the row to its next claim
        client = await run_in_threadpool(self._clients.get, d.client_id)
        if client is None or client.disabled or not client.backchannel_logout_uri:
            await self._finish(d, token, error="the client no longer takes back-channel logout", status=None, dead=True)
            return
        uri = client.backchannel_logout_uri
        try:
            target = await run_in_threadpool(self._target, uri)
        except TargetRefused as exc:
            await self._finish(d, token, error=f"refused {_where(uri)}: {exc}", status=None)
            return
        logout_token = self._tokens.issue(client_id=client.client_id, sid=d.sid, sub=d.sub, alg=client.id_token_alg)
        status, error = await self._post(target, logout_token)
        if status in SUCCESS:
            now = self._clock.now()
            if await run_in_threadpool(self._outbox.delivered, d.id, token, now, status):
                self._metrics.logout_delivery("sent", latency=now - d.created_at)
                self._audit.record(
                    "logout.delivered", actor="system", subject=d.sub, client_id=d.client_id, sid=d.sid,
                    delivery=d.id, attempts=d.attempts,
                )  # fmt: skip
            return
        await self._finish(d, token, error=f"{_where(uri)}: {error}", status=status)

    def _target(self, uri: str) -> Target:
        if self._resolver is not None:
            return self._resolver(uri)
        s = self.settings
        return resolve(uri, allow_private=s.allow_private, allow_loopback=s.allow_loopback)

    async def _post(self, target: Target, logout_token: str) -> tuple[int | None, str]:
        assert self._http is not None
        body = urlencode({"logout_token": logout_token})  # BCL §2.5: form-encoded, the token as logout_token
        headers = {"content-type": "application/x-www-form-urlencoded", "host": target.host, "accept": "*/*"}
        extensions = {"sni_hostname": target.sni} if target.sni else {}
        try:
            async with asyncio.timeout(self.settings.timeout):  # the whole exchange, not per read
                async with self._http.stream(
                    "POST", target.url, content=body, headers=headers, extensions=extensions
                ) as response:
                    read = 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read >= MAX_RESPONSE:
                            break  # enough: the status is the answer
                    status = response.status_code
        except TimeoutError:
            return None, f"no answer within {self.settings.timeout:g} s"
        except httpx.HTTPError as exc:
            return None, f"{exc.__class__.__name__}"
        return status, f"answered {status}"

    async def _finish(self, d: Delivery, token: str, *, error: str, status: int | None, dead: bool = False) -> None:
        now = self._clock.now()
        retry_at = None if dead else now + backoff(d.attempts, self._rng)
        if retry_at is not None and retry_at > d.created_at + self.settings.horizon:
            retry_at = None  # past the retry horizon: dead
        if not await run_in_threadpool(
            lambda: self._outbox.failed(d.id, token, error=error, status=status, retry_at=retry_at)
        ):
            return  # the claim was lost meanwhile: the row's new holder records its own outcome
        log.warning("back-channel logout %s to client %s, attempt %d: %s", d.id, d.client_id, d.attempts, error)
        if retry_at is None:
            self._metrics.logout_delivery("dead")
            self._audit.record(
                "logout.dead", actor="system", subject=d.sub, client_id=d.client_id, sid=d.sid, delivery=d.id,
                attempts=d.attempts, error=error[:200],
            )  # fmt: skip
        else:
            self._metrics.logout_delivery("failed")
