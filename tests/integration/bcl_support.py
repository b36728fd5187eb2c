"""A receiving RP for back-channel logout tests: a Starlette app on a loopback port (uvicorn in a thread) that
records every POST and answers as the test tells it (status, delay, hold, redirect)."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.services import Services
from idp.tokens import jwt
from idp.tokens.logout_token import TYP
from tests.integration.live_server import LiveServer


@dataclass
class Received:
    token: str
    content_type: str
    at: float
    answered: int


@dataclass
class Receiver:
    """``status``: what the next POSTs get; ``delay``: seconds before answering; ``hold``: answer only once set."""

    status: int = 200
    delay: float = 0.0
    hold: threading.Event | None = None
    received: list[Received] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)  # requests to any other path (a followed redirect)
    in_flight: int = 0
    max_in_flight: int = 0
    server: LiveServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        async def bcl(request: Request) -> Response:
            body = (await request.body()).decode()
            with self.lock:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                if self.delay:
                    await asyncio.sleep(self.delay)
                if self.hold is not None:
                    while not self.hold.is_set():
                        await asyncio.sleep(0.01)
                status = self.status
                token = parse_qs(body).get("logout_token", [""])[0]
                with self.lock:
                    self.received.append(
                        Received(token, request.headers.get("content-type", ""), time.monotonic(), status)
                    )
                if status in (301, 302, 303, 307, 308):
                    return Response(status_code=status, headers={"location": "/elsewhere"})
                if status == 299:  # a 200 with a body far over any cap
                    return Response(b"x" * 2_000_000, status_code=200)
                return Response(status_code=status, headers={"cache-control": "no-store"})
            finally:
                with self.lock:
                    self.in_flight -= 1

        async def elsewhere(request: Request) -> Response:
            self.strays.append(request.url.path)
            return Response(status_code=200)

        return Starlette(
            routes=[Route("/bcl", bcl, methods=["POST"]), Route("/elsewhere", elsewhere, methods=["GET", "POST"])]
        )

    @property
    def uri(self) -> str:
        assert self.server is not None
        return f"{self.server.url}/bcl"

    def start(self, port: int | None = None) -> Receiver:
        self.server = LiveServer(self.app(), port).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def ok(self) -> list[Received]:
        return [r for r in self.received if r.answered in (200, 204)]


def claims_of(c: Services, token: str, client_id: str) -> dict[str, Any]:
    """What an RP checks (BCL §2.6): signature by a published key, typ, iss, aud, iat, exp, jti, events."""
    _, claims = jwt.verify(
        c.keyring, token, typ=TYP, issuer=c.settings.issuer, audience=client_id, now=c.clock.now(),
        require=("iss", "aud", "iat", "exp", "jti", "events"),
    )  # fmt: skip
    return claims


async def until(predicate: Any, timeout: float = 10.0) -> None:
    """Wait (bounded, real time) for a condition another thread or task makes true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
