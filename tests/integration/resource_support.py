"""Shared pieces for the resource-server tests: an IdP under uvicorn, a protected API, token minting."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from examples.resource_server import create_app as create_api
from idp.app import create_app
from idp.clock import FrozenClock
from idp.resource import ResourceProtector
from idp.services import Services
from idp.tokens import jwt
from tests import oauthkit
from tests.integration.live_server import LiveServer

ISSUER = "https://idp.test"
API = "https://api.test"


def mint(c: Services, clock: FrozenClock, *, alg: str = "ES256", typ: str = "at+jwt", **claims: Any) -> str:
    now = int(clock.now())
    base = {
        "iss": ISSUER,
        "sub": "u1",
        "aud": API,
        "client_id": "c1",
        "iat": now,
        "exp": now + 600,
        "jti": secrets.token_urlsafe(12),
        "scope": "api:read",
        "sid": "s1",
    }
    return jwt.sign(c.keyring, alg, typ, base | claims)


def feed_reader(c: Services, scope: str = "deny-list:read", **kw: Any) -> tuple[str, str]:
    """(client_id, secret) of a resource server registered to read the deny-list feed."""
    kw.setdefault("audience", API)
    client, secret = oauthkit.service_client(c, name="Orders API", scope=scope, **kw)
    return client.client_id, secret


def feed_auth(c: Services, scope: str = "deny-list:read") -> httpx.BasicAuth:
    return httpx.BasicAuth(*feed_reader(c, scope))


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def running_idp(c: Services) -> AsyncIterator[LiveServer]:
    """The IdP on a loopback port for the duration of the block."""
    server = idp_server(c)
    await server.astart()
    try:
        yield server
    finally:
        await server.astop()


def idp_server(c: Services, port: int | None = None) -> LiveServer:
    """The IdP app under uvicorn; stopping it first ends its SSE streams (what SIGTERM does in `idp serve`)."""

    return LiveServer(create_app(services=c), port, before_stop=c.denylist_feed.close)


@asynccontextmanager
async def api_client(protector: ResourceProtector) -> AsyncIterator[httpx.AsyncClient]:
    """The example API (idp.resource middleware) in-process, with its lifespan (starts the follower)."""
    async with LifespanManager(create_api(protector)) as manager:
        transport = httpx.ASGITransport(app=manager.app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url=API) as client:
            yield client


def protector_for(c: Services, idp_url: str, clock: FrozenClock, **kw: Any) -> ResourceProtector:
    """An idp.resource protector following the IdP at ``idp_url`` as a fresh deny-list:read client of ``c``."""
    options: dict[str, Any] = {"stale_after": 3.0, "reconnect_max": 0.3}
    options.update(kw)
    options.setdefault("client", feed_reader(c))
    return ResourceProtector(issuer=ISSUER, audience=API, base_url=idp_url, clock=clock, **options)


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> float:
    """Poll ``check`` until true; fail after ``within`` seconds. Returns the time it took."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > within:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - started
