"""A BFF app with the proxy routes over fakes: the in-memory store, the fake token endpoint, and a fake
upstream (an httpx MockTransport handler the test scripts). ``call`` drives the ASGI app with a raw path
and chunked bodies, where an httpx client would normalise the path or buffer the body."""

from __future__ import annotations

import asyncio
import json as _json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from idp.bff.config import Upstream
from idp.bff.csrf import CsrfGuard
from idp.bff.exchange import TokenExchanger
from idp.bff.proxy import ProxyTimeouts, proxy_routes
from idp.bff.refresh import TokenKeeper
from idp.bff.session import BffSession
from idp.clock import FrozenClock
from tests.unit.bff.fakes import FakeTokenEndpoint, MemorySessionStore, YieldingSleep, cookie_is_key, token_endpoint

ORIGIN = "https://app.example.com"
COOKIE = "__Host-bff"
CSRF = {"X-CSRF": "1"}

ORDERS = Upstream(prefix="/api", url="https://orders.internal/v1")
BILLING = Upstream(prefix="/billing", url="https://billing.internal", mode="exchange", audience="https://billing")


class Body(httpx.AsyncByteStream):
    """A response body the way a real transport hands it over: a stream not yet read."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self):  # type: ignore[override]
        if self.data:
            yield self.data


def respond(status: int, *, headers=None, content: bytes = b"", json: object = None) -> httpx.Response:
    if json is not None:
        content = _json.dumps(json, separators=(",", ":")).encode()
        headers = [*(headers or []), ("Content-Type", "application/json")]
    return httpx.Response(status, headers=headers, stream=Body(content))


class StreamingMock(httpx.AsyncBaseTransport):
    """Like httpx.MockTransport, minus the read of the whole request body before the handler runs."""

    def __init__(self, handler: Callable[[httpx.Request], Awaitable[httpx.Response]]) -> None:
        self.handler = handler

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.handler(request)


@dataclass
class Seen:
    method: str
    url: str
    headers: httpx.Headers
    body: bytes
    timeout: dict[str, float]


@dataclass
class FakeUpstream:
    """Records what reached the upstreams; ``reply`` answers (default: 200 JSON echo of method and path)."""

    seen: list[Seen] = field(default_factory=list)
    reply: Callable[[httpx.Request], Awaitable[httpx.Response]] | None = None

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.reply is not None:
            resp = await self.reply(request)
            self.seen.append(Seen(request.method, str(request.url), request.headers, b"", {}))
            return resp
        body = await request.aread()
        self.seen.append(
            Seen(request.method, str(request.url), request.headers, body, dict(request.extensions["timeout"]))
        )
        return respond(200, json={"method": request.method, "path": request.url.raw_path.decode()})


@dataclass
class Bff:
    app: Starlette
    store: MemorySessionStore
    idp: FakeTokenEndpoint
    upstream: FakeUpstream
    clock: FrozenClock
    exchanger: TokenExchanger
    ended: list[str] = field(default_factory=list)  # the keys the proxy's ``ended`` hook was called for

    def client(self, cookie: str | None = "k1") -> httpx.AsyncClient:
        c = httpx.AsyncClient(transport=httpx.ASGITransport(self.app, client=("203.0.113.9", 5555)), base_url=ORIGIN)
        if cookie is not None:
            c.cookies.set(COOKIE, cookie, domain="app.example.com")
        return c


def make_bff(
    clock: FrozenClock, *, timeouts: ProxyTimeouts | None = None, upstreams: tuple[Upstream, ...] = (ORDERS, BILLING)
) -> Bff:
    store = MemorySessionStore(clock)
    idp = FakeTokenEndpoint()
    upstream = FakeUpstream()
    keeper = TokenKeeper(store, token_endpoint(idp), clock, sleep=YieldingSleep())
    exchanger = TokenExchanger(token_endpoint(idp), clock, store=store)

    async def user(request: Request) -> JSONResponse:
        return JSONResponse({"bff": "user"})

    ended: list[str] = []

    async def on_ended(session: BffSession, response: Response) -> None:
        ended.append(session.key)
        response.delete_cookie(COOKIE, path="/", secure=True, httponly=True)

    routes = proxy_routes(
        list(upstreams),
        sessions=cookie_is_key(store, COOKIE),
        keeper=keeper,
        exchanger=exchanger,
        http=httpx.AsyncClient(transport=StreamingMock(upstream)),
        csrf=CsrfGuard(ORIGIN),
        timeouts=timeouts,
        ended=on_ended,
    )
    app = Starlette(routes=[*routes, Route("/bff/user", user)])
    return Bff(app, store, idp, upstream, clock, exchanger, ended)


@dataclass
class Answer:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


async def call(
    app: Starlette,
    method: str,
    raw_path: str,
    *,
    headers: dict[str, str] | None = None,
    body: list[bytes] | None = None,
    before_chunk: Callable[[int], Awaitable[None]] | None = None,
    on_chunk: Callable[[bytes], Awaitable[None]] | None = None,
    disconnect_after: int | None = None,
) -> Answer:
    """One request straight into the ASGI app: ``raw_path`` exactly as a client might send it."""
    path, _, query = raw_path.partition("?")
    hdrs = [(b"host", b"app.example.com")] + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": unquote(path),
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": hdrs,
        "server": ("app.example.com", 443),
        "client": ("203.0.113.9", 5555),
        "root_path": "",
    }
    chunks = list(body or [])
    sent = 0
    answer = Answer()

    async def receive() -> dict[str, object]:
        nonlocal sent
        if disconnect_after is not None and sent >= disconnect_after:
            return {"type": "http.disconnect"}
        if sent < len(chunks):
            if before_chunk is not None:
                await before_chunk(sent)
            sent += 1
            return {"type": "http.request", "body": chunks[sent - 1], "more_body": sent < len(chunks)}
        if not chunks and sent == 0:
            sent = 1
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # no disconnect until the response is over
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]  # type: ignore[assignment]
            answer.headers = list(message.get("headers", []))  # type: ignore[call-overload]
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            if chunk:
                answer.chunks.append(chunk)  # type: ignore[arg-type]
                if on_chunk is not None:
                    await on_chunk(chunk)  # type: ignore[arg-type]

    await asyncio.wait_for(app(scope, receive, send), timeout=5)
    return answer
