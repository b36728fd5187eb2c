"""The BFF proxy against idp's real token endpoint: refresh tokens rotate and a reused one revokes the
family, so twenty parallel calls on an expired access token, split over two BFF workers sharing one
session store, must reach idp with exactly one refresh, and the rotated token must keep working. Every
real store: in-process (one instance, as one process shares it), SQLite, PostgreSQL and Redis (one store
object per worker, as separate processes would have, over the same database)."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from idp.bff.config import Upstream
from idp.bff.csrf import CsrfGuard
from idp.bff.proxy import proxy_routes
from idp.bff.refresh import TokenKeeper
from idp.bff.sealing import SessionCrypto
from idp.bff.session import BffSession, SessionStore, TokenSet
from idp.bff.stores import open_store
from idp.bff.token_endpoint import TokenEndpoint
from idp.clock import FrozenClock
from idp.services import Services
from tests import oauthkit
from tests.integration import bff_support
from tests.unit.bff.fakes import cookie_is_key

store_url = bff_support.store_url  # every BFF store beside each backend

pytestmark = pytest.mark.timing  # the waiting worker polls the store on real time

BFF = "https://app.example.com"
COOKIE = "__Host-bff"


class Counting(httpx.AsyncBaseTransport):
    """Passes requests to idp's app, counting refresh_token grants."""

    def __init__(self, app: object) -> None:
        self.inner = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        self.refreshes = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token" and b"grant_type=refresh_token" in request.content:
            self.refreshes += 1
        return await self.inner.handle_async_request(request)


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"authorization": request.headers.get("authorization")})


def bff_worker(store: SessionStore, endpoint: TokenEndpoint, clock: FrozenClock) -> Starlette:
    upstream = httpx.AsyncClient(transport=httpx.ASGITransport(app=Starlette(routes=[Route("/{p:path}", echo)])))
    keeper = TokenKeeper(store, endpoint, clock, sleep=asyncio.sleep, first_backoff=0.02)
    routes = proxy_routes(
        [Upstream("/api", "https://api.internal")],
        sessions=cookie_is_key(store, COOKIE),
        keeper=keeper,
        exchanger=None,
        http=upstream,
        csrf=CsrfGuard(BFF),
    )
    return Starlette(routes=routes)


@pytest.fixture
async def idp_http(app: object) -> AsyncIterator[Counting]:
    yield Counting(app)


@pytest.fixture
async def stores(store_url: str, backend: Any, clock: FrozenClock) -> AsyncIterator[list[SessionStore]]:
    """Two workers' views of one store."""
    crypto = SessionCrypto(secrets.token_bytes(32))
    prefix = f"{backend.redis_prefix or 'idptest:'}bff:"
    first = open_store(store_url, crypto, clock, prefix=prefix)
    second = first if store_url == "memory://" else open_store(store_url, crypto, clock, prefix=prefix)
    yield [first, second]
    for store in {id(first): first, id(second): second}.values():
        await store.close()


async def signed_in(container: Services, client: httpx.AsyncClient, clock: FrozenClock) -> tuple[BffSession, str]:
    web, secret = oauthkit.web_client(container)
    user = oauthkit.make_user(container)
    body = await oauthkit.tokens_for(container, client, web, secret, user, scope="openid offline_access")
    assert body.get("refresh_token")
    now = clock.now()
    session = BffSession(
        key=secrets.token_hex(32),
        sub=user.id,
        sid=None,
        claims={},
        tokens=TokenSet(body["access_token"], now - 1, body["refresh_token"], body.get("id_token")),
        created_at=now,
        expires_at=now + 3600,
    )
    return session, f"{web.client_id}:{secret}"


def endpoint(idp_http: Counting, credentials: str) -> TokenEndpoint:
    client_id, secret = credentials.split(":", 1)
    http = httpx.AsyncClient(transport=idp_http)
    return TokenEndpoint(f"{oauthkit.ISSUER}/token", client_id, secret, http)


async def test_twenty_calls_on_two_workers_refresh_once_at_idp(container, client, clock, idp_http, stores):
    session, credentials = await signed_in(container, client, clock)
    await stores[0].create(session)
    workers = [bff_worker(store, endpoint(idp_http, credentials), clock) for store in stores]
    browsers = [httpx.AsyncClient(transport=httpx.ASGITransport(app=w), base_url=BFF) for w in workers]
    for b in browsers:
        b.cookies.set(COOKIE, session.key, domain="app.example.com")
    calls = [browsers[i % 2].get(f"/api/orders/{i}", headers={"X-CSRF": "1"}) for i in range(20)]
    answers = await asyncio.gather(*calls)
    assert [r.status_code for r in answers] == [200] * 20, [r.text for r in answers if r.status_code != 200]
    assert idp_http.refreshes == 1
    stored = await stores[1].get(session.key)
    assert stored is not None and stored.version == 1 and stored.tokens.refresh_token != session.tokens.refresh_token
    assert {r.json()["authorization"] for r in answers} == {f"Bearer {stored.tokens.access_token}"}

    # The rotated refresh token is live at idp: the family was not revoked by a second use.
    clock.advance(1)
    await stores[1].replace(
        dataclasses.replace(
            stored, tokens=dataclasses.replace(stored.tokens, access_expires_at=clock.now() - 1), version=2
        ),
        expected_version=1,
    )
    r = await browsers[0].get("/api/again", headers={"X-CSRF": "1"})
    assert r.status_code == 200 and idp_http.refreshes == 2
    for b in browsers:
        await b.aclose()


async def test_a_refresh_token_used_elsewhere_ends_the_session(container, client, clock, idp_http, stores):
    session, credentials = await signed_in(container, client, clock)
    client_id, secret = credentials.split(":", 1)
    web = container.clients.get(client_id)
    assert web is not None
    used = await oauthkit.refresh(client, web, secret, session.tokens.refresh_token or "")
    assert used.status_code == 200  # the token was rotated behind the BFF's back
    clock.advance(container.settings.refresh_grace_seconds + 1)  # past idp's retry grace: now it is reuse
    await stores[0].create(session)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=bff_worker(stores[0], endpoint(idp_http, credentials), clock)),
        base_url=BFF,
    ) as browser:
        browser.cookies.set(COOKIE, session.key, domain="app.example.com")
        r = await browser.get("/api/orders", headers={"X-CSRF": "1"})
    assert r.status_code == 401 and r.json()["error"] == "session_ended"
    assert session.tokens.access_token not in r.text
    assert await stores[1].get(session.key) is None
