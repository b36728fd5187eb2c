"""The BFF proxy over real sockets: uvicorn in front of the BFF, uvicorn behind it as the upstream, httpx's
real transport between them. What the in-process tests cannot show: the raw path uvicorn hands over,
chunked bodies on the wire, real timeouts and refused connections."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from idp.bff.config import Upstream
from idp.bff.csrf import CsrfGuard
from idp.bff.proxy import ProxyTimeouts, proxy_routes
from idp.bff.refresh import TokenKeeper
from idp.clock import FrozenClock
from tests.integration.live_server import LiveServer, free_port
from tests.unit.bff.fakes import FakeTokenEndpoint, MemorySessionStore, cookie_is_key, make_session, token_endpoint

pytestmark = pytest.mark.timing

COOKIE = "__Host-bff"
CHUNK = b"q" * 65_536
N = 16
PACKED = gzip.compress(b"hello " * 5000)


class UpstreamState:
    def __init__(self) -> None:
        self.first_chunk_seen = threading.Event()
        self.finished = threading.Event()


def upstream_app(state: UpstreamState) -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return JSONResponse(
            {
                "method": request.method,
                "raw_path": request.scope["raw_path"].decode(),
                "query": request.scope["query_string"].decode(),
                "size": size,
                "headers": {k: v for k, v in request.headers.items()},
            },
            headers={"Set-Cookie": "planted=1", "X-Kept": "yes"},
        )

    async def download(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield CHUNK
            # The rest only once the browser has the first chunk: a buffering proxy never gets there.
            seen = await asyncio.to_thread(state.first_chunk_seen.wait, 5)
            assert seen
            for _ in range(N - 1):
                yield CHUNK
            state.finished.set()

        return StreamingResponse(body(), media_type="application/octet-stream")

    async def slow(request: Request) -> Response:
        await asyncio.sleep(1.5)
        return Response("late")

    async def packed(request: Request) -> Response:
        return Response(PACKED, headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})

    return Starlette(
        routes=[
            Route("/v1/download", download),
            Route("/v1/slow", slow),
            Route("/v1/packed", packed),
            Route("/v1/{rest:path}", echo, methods=["GET", "POST", "PUT", "DELETE"]),
        ]
    )


def bff_app(upstream_url: str, dead_url: str, store: MemorySessionStore, clock: FrozenClock) -> Starlette:
    async def user(request: Request) -> JSONResponse:
        return JSONResponse({"bff": "user"})

    routes = proxy_routes(
        [Upstream("/api", f"{upstream_url}/v1"), Upstream("/dead", dead_url)],
        sessions=cookie_is_key(store, COOKIE),
        keeper=TokenKeeper(store, token_endpoint(FakeTokenEndpoint()), clock),
        exchanger=None,
        http=httpx.AsyncClient(),
        csrf=CsrfGuard("http://app.test"),
        timeouts=ProxyTimeouts(connect=1.0, read=0.3),
    )
    return Starlette(routes=[*routes, Route("/bff/user", user)])


@pytest.fixture
def servers() -> Iterator[tuple[LiveServer, UpstreamState]]:
    clock = FrozenClock(1_800_000_000.0)
    store = MemorySessionStore(clock)
    store.rows["k1"] = make_session(clock)
    state = UpstreamState()
    upstream = LiveServer(upstream_app(state)).start()
    bff = LiveServer(bff_app(upstream.url, f"http://127.0.0.1:{free_port()}", store, clock)).start()
    try:
        yield bff, state
    finally:
        bff.stop()
        upstream.stop()


def browser(bff: LiveServer) -> httpx.AsyncClient:
    # The browser talks to the BFF on its public origin; the socket goes to the live server.
    return httpx.AsyncClient(
        base_url=bff.url,
        headers={"X-CSRF": "1", "Cookie": f"{COOKIE}=k1", "Host": "app.test", "Origin": "http://app.test"},
        timeout=10,
    )


async def test_forwarded_headers_and_body_over_the_wire(servers):
    bff, _ = servers
    async with browser(bff) as c:
        r = await c.post(
            "/api/orders/7?x=1&y=%2F",
            content=iter_chunks(4),
            headers={"Authorization": "Bearer mine", "Connection": "X-Hop", "X-Hop": "1"},
        )
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["raw_path"] == "/v1/orders/7" and got["query"] == "x=1&y=%2F"
    assert got["size"] == 4 * len(CHUNK)
    h = got["headers"]
    assert h["authorization"] == "Bearer at-0"
    assert "cookie" not in h and "x-hop" not in h and "x-csrf" not in h
    assert h["x-forwarded-for"] == "127.0.0.1" and h["x-forwarded-host"] == "app.test"
    assert "set-cookie" not in r.headers and r.headers["x-kept"] == "yes"


async def test_one_server_and_one_date_header(servers):
    # Both uvicorns add Server and Date; the browser sees the front one's only.
    bff, _ = servers
    async with browser(bff) as c:
        r = await c.get("/api/orders")
    assert r.status_code == 200
    assert r.headers.get_list("server") == ["uvicorn"] and len(r.headers.get_list("date")) == 1


async def iter_chunks(n: int) -> AsyncIterator[bytes]:
    for _ in range(n):
        yield CHUNK


async def test_download_streams(servers):
    bff, state = servers
    received = 0
    async with browser(bff) as c, c.stream("GET", "/api/download") as r:
        assert r.status_code == 200
        async for chunk in r.aiter_raw():
            if received == 0:
                assert not state.finished.is_set()
                state.first_chunk_seen.set()
            received += len(chunk)
    assert received == N * len(CHUNK)


async def test_content_encoding_is_relayed_raw(servers):
    bff, _ = servers
    async with browser(bff) as c:
        r = await c.get("/api/packed", headers={"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip" and r.text == "hello " * 5000


async def test_read_timeout_is_504(servers):
    bff, _ = servers
    async with browser(bff) as c:
        r = await c.get("/api/slow")
    assert r.status_code == 504 and r.json()["error"] == "upstream_timeout"


async def test_refused_connection_is_502(servers):
    bff, _ = servers
    async with browser(bff) as c:
        r = await c.get("/dead/x")
    assert r.status_code == 502 and r.json()["error"] == "upstream_unavailable"


@pytest.mark.parametrize("target", ["/api/../bff/user", "/api/%2e%2e/bff/user", "/api/x/..%2F..%2Fbff/user"])
def test_traversal_on_the_wire_is_refused(servers, target):
    bff, _ = servers
    request = (
        f"GET {target} HTTP/1.1\r\nHost: app.test\r\nX-CSRF: 1\r\nCookie: {COOKIE}=k1\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", bff.port), timeout=5) as s:
        s.sendall(request.encode())
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"invalid_path" in answer and b'"bff":"user"' not in answer
