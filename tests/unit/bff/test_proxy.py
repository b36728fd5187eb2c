"""The API proxy: session and CSRF gates, prefix and path handling, headers in both directions, streaming,
errors, refresh and exchange on the way."""

from __future__ import annotations

import asyncio
import gzip

import httpx
import pytest

from idp.bff.config import Upstream
from idp.bff.proxy import ProxyTimeouts, proxy_routes
from idp.clock import FrozenClock
from tests.unit.bff.fakes import error, expire, make_session
from tests.unit.bff.proxykit import CSRF, ORIGIN, Bff, call, make_bff, respond

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(1_800_000_000.0)


@pytest.fixture
async def bff(clock) -> Bff:
    b = make_bff(clock)
    await b.store.create(make_session(clock))
    return b


# --- gates -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
async def test_csrf_header_required_on_every_method(bff, method):
    async with bff.client() as c:
        r = await c.request(method, "/api/orders")
    assert r.status_code == 403
    if method != "HEAD":
        assert r.json()["error"] == "csrf_failed"
    assert bff.upstream.seen == []


async def test_cross_origin_refused_even_with_the_header(bff):
    async with bff.client() as c:
        r = await c.post("/api/orders", headers={**CSRF, "Origin": "https://evil.example.com"})
        assert r.status_code == 403
        r = await c.get("/api/orders", headers={**CSRF, "Sec-Fetch-Site": "same-site"})
        assert r.status_code == 403
        r = await c.get("/api/orders", headers={**CSRF, "Origin": ORIGIN, "Sec-Fetch-Site": "same-origin"})
        assert r.status_code == 200
    assert len(bff.upstream.seen) == 1


@pytest.mark.parametrize("cookie", [None, "unknown"])
async def test_no_session_is_401(bff, cookie):
    async with bff.client(cookie) as c:
        r = await c.get("/api/orders", headers=CSRF)
    assert r.status_code == 401 and r.json()["error"] == "session_required"
    assert r.headers["cache-control"] == "no-store"
    assert bff.upstream.seen == []


# --- prefix and path ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "upstream_url"),
    [
        ("/api/orders/42?x=1&y=a%20b", "https://orders.internal/v1/orders/42?x=1&y=a%20b"),
        ("/api", "https://orders.internal/v1"),
        ("/api/", "https://orders.internal/v1/"),
        ("/api/a%20b/%C3%A9", "https://orders.internal/v1/a%20b/%C3%A9"),
        ("/api/...", "https://orders.internal/v1/..."),
        ("/api/caf\u00e9 x", "https://orders.internal/v1/caf%C3%A9%20x"),  # raw bytes from a non-browser client
    ],
)
async def test_prefix_is_stripped_and_the_rest_forwarded_as_encoded(bff, path, upstream_url):
    a = await call(bff.app, "GET", path, headers={**CSRF, "Cookie": "__Host-bff=k1"})
    assert a.status == 200
    assert [s.url for s in bff.upstream.seen] == [upstream_url]


async def test_a_longer_name_is_not_under_the_prefix(bff):
    async with bff.client() as c:
        r = await c.get("/apix/orders", headers=CSRF)
    assert r.status_code == 404 and bff.upstream.seen == []


@pytest.mark.parametrize(
    "path",
    [
        "/api/../bff/user",
        "/api/./orders",
        "/api/orders/..",
        "/api/%2e%2e/bff/user",
        "/api/%2E%2e/%2e%2E/bff/user",
        "/api/.%2e/bff/user",
        "/api/%252e%252e/bff/user",  # an upstream that decodes twice
        "/api/a%2F..%2F..%2Fbff",
        "/api/a%2fb",
        "/api/a%5C..%5Cb",
        "/api/a\\..\\b",
        "/api/a%00b",
        "/api%2F..%2Fbff/user",
        "/%61pi/orders",
    ],
)
async def test_path_cannot_escape_the_upstream_prefix(bff, path):
    a = await call(bff.app, "GET", path, headers={**CSRF, "Cookie": "__Host-bff=k1"})
    assert a.status == 400, a.body
    assert b"invalid_path" in a.body
    assert bff.upstream.seen == []


@pytest.mark.parametrize(
    "bad",
    [
        ("api", "https://x"),
        ("/api/", "https://x"),
        ("/a/../b", "https://x"),
        ("/a/./b", "https://x"),
        ("/api", "ftp://x"),
        ("/api", "https://x/?q=1"),
        ("/api", "http://orders.internal"),  # plain http off loopback
        ("/bff/x", "https://x"),
    ],
)
def test_bad_upstreams_are_refused_when_made(bad):
    with pytest.raises(ValueError):
        Upstream(*bad)


def test_overlapping_or_exchange_without_audience_refused(clock):
    with pytest.raises(ValueError):
        Upstream("/api", "https://x", mode="exchange")
    with pytest.raises(ValueError):
        make_bff(clock, upstreams=(Upstream("/api", "https://x"), Upstream("/api/v2", "https://y")))


# --- headers -----------------------------------------------------------------------------------------


async def test_request_headers_stripped_and_added(bff):
    browser = {
        **CSRF,
        "Cookie": "__Host-bff=k1; other=1",
        "Authorization": "Bearer from-the-browser",
        "Connection": "keep-alive, X-Hop",
        "X-Hop": "per-connection",
        "Keep-Alive": "timeout=5",
        "Proxy-Authorization": "Basic eA==",
        "Proxy-Connection": "keep-alive",
        "TE": "trailers",
        "Trailer": "X-Sum",
        "Upgrade": "h2c",
        "X-Forwarded-For": "6.6.6.6",
        "X-Forwarded-Host": "evil.test",
        "Forwarded": "for=6.6.6.6",
        "Accept": "application/json",
        "X-Request-Id": "r-1",
    }
    a = await call(bff.app, "GET", "/api/orders", headers=browser)
    assert a.status == 200
    (seen,) = bff.upstream.seen
    h = seen.headers
    assert h.get("connection") in (None, "keep-alive")  # the proxy's own connection, not the browser's
    for gone in [
        "cookie",
        "x-hop",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "forwarded",
        "x-csrf",
    ]:
        assert gone not in h, gone
    assert h.get_list("authorization") == ["Bearer at-0"]
    assert h.get_list("x-forwarded-for") == ["203.0.113.9"]
    assert h["x-forwarded-proto"] == "https" and h.get_list("x-forwarded-host") == ["app.example.com"]
    assert h["host"] == "orders.internal"
    assert h["accept"] == "application/json" and h["x-request-id"] == "r-1"


async def test_response_headers_stripped_and_passed(bff):
    async def reply(request: httpx.Request) -> httpx.Response:
        return respond(
            201,
            headers=[
                ("Content-Type", "application/json"),
                ("Set-Cookie", "__Host-bff=planted; Path=/; Secure"),
                ("Set-Cookie", "x=1"),
                ("Connection", "close, X-Up-Hop"),
                ("X-Up-Hop", "1"),
                ("Keep-Alive", "timeout=1"),
                ("Proxy-Authenticate", "Basic"),
                ("Trailer", "X-Sum"),
                ("Upgrade", "h2c"),
                ("Alt-Svc", 'h3=":443"'),
                ("Link", "</a>; rel=next"),
                ("Link", "</b>; rel=prev"),
                ("WWW-Authenticate", 'Bearer error="insufficient_scope"'),
                ("Location", "/v1/orders/43"),
                ("Cache-Control", "private"),
            ],
            content=b'{"id":43}',
        )

    bff.upstream.reply = reply
    async with bff.client() as c:
        r = await c.post("/api/orders", headers=CSRF, json={"n": 1})
    assert r.status_code == 201 and r.json() == {"id": 43}
    for gone in ["set-cookie", "x-up-hop", "keep-alive", "proxy-authenticate", "trailer", "upgrade", "alt-svc"]:
        assert gone not in r.headers, gone
    assert r.headers.get_list("link") == ["</a>; rel=next", "</b>; rel=prev"]
    assert r.headers["www-authenticate"] == 'Bearer error="insufficient_scope"'
    assert r.headers["cache-control"] == "private" and r.headers["location"] == "/v1/orders/43"
    assert "at-0" not in str(r.headers.raw) and "at-0" not in r.text
    assert not c.cookies.get("x")


async def test_upstream_server_and_date_are_dropped(bff):
    async def reply(request: httpx.Request) -> httpx.Response:
        headers = [("Server", "orders/1.0"), ("Date", "Mon, 01 Jan 2024 00:00:00 GMT"), ("X-Kept", "1")]
        return respond(200, headers=headers, content=b"ok")

    bff.upstream.reply = reply
    async with bff.client() as c:
        r = await c.get("/api/orders", headers=CSRF)
    assert r.status_code == 200 and r.headers["x-kept"] == "1"
    assert "server" not in r.headers and "date" not in r.headers  # the server in front adds its own


async def test_answers_without_cache_control_are_private(bff):
    async with bff.client() as c:
        r = await c.get("/api/orders", headers=CSRF)
    assert r.headers.get_list("cache-control") == ["private"]


async def test_content_encoding_passes_through_untouched(bff):
    packed = gzip.compress(b"x" * 10_000)

    async def reply(request: httpx.Request) -> httpx.Response:
        return respond(200, headers={"Content-Encoding": "gzip", "Content-Length": str(len(packed))}, content=packed)

    bff.upstream.reply = reply
    a = await call(bff.app, "GET", "/api/big", headers={**CSRF, "Cookie": "__Host-bff=k1"})
    assert a.body == packed
    assert (b"content-encoding", b"gzip") in a.headers
    assert (b"content-length", str(len(packed)).encode()) in a.headers


async def test_request_body_forwarded_with_method(bff):
    async with bff.client() as c:
        for method in ["POST", "PUT", "PATCH", "DELETE"]:
            r = await c.request(method, "/api/orders/1", headers={**CSRF, "Content-Type": "text/plain"}, content=b"hi")
            assert r.json()["method"] == method
    assert [(s.method, s.body, s.headers["content-length"]) for s in bff.upstream.seen] == [
        (m, b"hi", "2") for m in ["POST", "PUT", "PATCH", "DELETE"]
    ]


# --- streaming ---------------------------------------------------------------------------------------

CHUNK = b"z" * 65_536
N = 8


async def test_request_body_is_streamed(bff):
    """The browser's chunk i+1 is only delivered once the upstream has read chunk i: a buffering proxy
    would wait for the whole body first and never get there."""
    upstream_got: list[bytes] = []
    progress = asyncio.Condition()

    async def reply(request: httpx.Request) -> httpx.Response:
        async for chunk in request.stream:
            async with progress:
                upstream_got.append(chunk)
                progress.notify_all()
        return respond(200, json={"bytes": sum(map(len, upstream_got))})

    async def before_chunk(i: int) -> None:
        async with progress:
            await progress.wait_for(lambda: sum(map(len, upstream_got)) >= i * len(CHUNK))

    bff.upstream.reply = reply
    a = await call(
        bff.app,
        "POST",
        "/api/upload",
        headers={**CSRF, "Cookie": "__Host-bff=k1", "Transfer-Encoding": "chunked"},
        body=[CHUNK] * N,
        before_chunk=before_chunk,
    )
    assert a.status == 200 and a.body == b'{"bytes":%d}' % (N * len(CHUNK))
    assert bff.upstream.seen[0].headers["transfer-encoding"] == "chunked"


async def test_response_body_is_streamed(bff):
    """The upstream produces chunk i+1 only after the browser has received chunk i."""
    delivered = asyncio.Condition()
    received: list[bytes] = []

    async def body():
        for i in range(N):
            async with delivered:
                await delivered.wait_for(lambda: len(received) >= i)
            yield CHUNK

    async def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body())

    async def on_chunk(chunk: bytes) -> None:
        async with delivered:
            received.append(chunk)
            delivered.notify_all()

    bff.upstream.reply = reply
    a = await call(bff.app, "GET", "/api/download", headers={**CSRF, "Cookie": "__Host-bff=k1"}, on_chunk=on_chunk)
    assert a.status == 200 and a.body == CHUNK * N and len(a.chunks) == N


# --- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (httpx.ConnectTimeout("slow"), 504, "upstream_timeout"),
        (httpx.ReadTimeout("slow"), 504, "upstream_timeout"),
        (httpx.PoolTimeout("busy"), 504, "upstream_timeout"),
        (httpx.ConnectError("refused"), 502, "upstream_unavailable"),
        (httpx.RemoteProtocolError("garbage"), 502, "upstream_unavailable"),
    ],
)
async def test_transport_errors_are_mapped(bff, exc, status, code):
    async def reply(request: httpx.Request) -> httpx.Response:
        raise exc

    bff.upstream.reply = reply
    async with bff.client() as c:
        r = await c.get("/api/orders", headers=CSRF)
    assert r.status_code == status and r.json()["error"] == code
    assert "at-0" not in r.text


async def test_upstream_errors_pass_through(bff):
    async def reply(request: httpx.Request) -> httpx.Response:
        return respond(500, json={"upstream": "broke"})

    bff.upstream.reply = reply
    async with bff.client() as c:
        r = await c.get("/api/orders", headers=CSRF)
    assert r.status_code == 500 and r.json() == {"upstream": "broke"}


async def test_timeouts_are_settable(clock):
    b = make_bff(clock, timeouts=ProxyTimeouts(connect=1.5, read=7.0, write=3.0, pool=2.0))
    await b.store.create(make_session(clock))
    async with b.client() as c:
        assert (await c.get("/api/x", headers=CSRF)).status_code == 200
    assert b.upstream.seen[0].timeout == {"connect": 1.5, "read": 7.0, "write": 3.0, "pool": 2.0}


# --- tokens on the way -------------------------------------------------------------------------------


async def test_twenty_concurrent_requests_on_an_expired_token_refresh_once(clock):
    b = make_bff(clock)
    await b.store.create(expire(make_session(clock), clock))
    async with b.client() as c:
        rs = await asyncio.gather(*(c.get(f"/api/orders/{i}", headers=CSRF) for i in range(20)))
    assert [r.status_code for r in rs] == [200] * 20
    assert len(b.idp.refreshes()) == 1
    assert {s.headers["authorization"] for s in b.upstream.seen} == {"Bearer at-1"}
    assert b.store.rows["k1"].tokens.refresh_token == "rt-1"


async def test_refused_refresh_ends_the_session_with_401(clock):
    b = make_bff(clock)
    await b.store.create(expire(make_session(clock), clock))
    b.idp.fail = lambda form: error(400, "invalid_grant")
    async with b.client() as c:
        r = await c.get("/api/orders", headers=CSRF)
        assert r.status_code == 401 and r.json()["error"] == "session_ended"
        assert "at-0" not in r.text and "rt-0" not in r.text
        r = await c.get("/api/orders", headers=CSRF)
        assert r.status_code == 401 and r.json()["error"] == "session_required"
    assert "k1" not in b.store.rows and b.upstream.seen == []
    assert b.ended == ["k1"]  # once, on the session_ended answer: the app's hook clears the cookie there


async def test_idp_outage_is_503_and_keeps_the_session(clock):
    b = make_bff(clock)
    await b.store.create(expire(make_session(clock), clock))
    b.idp.fail = lambda form: httpx.Response(503)
    async with b.client() as c:
        r = await c.get("/api/orders", headers=CSRF)
    assert r.status_code == 503 and r.json()["error"] == "idp_unavailable"
    assert "k1" in b.store.rows
    assert b.ended == [] and "set-cookie" not in r.headers  # the session stays, and so does its cookie


async def test_exchange_upstream_gets_a_minted_token_and_never_the_session_token(bff):
    async with bff.client() as c:
        for _ in range(3):
            assert (await c.get("/billing/invoices", headers=CSRF)).status_code == 200
        assert (await c.get("/api/orders", headers=CSRF)).status_code == 200
    billing = [s for s in bff.upstream.seen if s.url.startswith("https://billing.internal/")]
    assert {s.headers["authorization"] for s in billing} == {"Bearer x[https://billing]<-at-0#1"}
    assert len(bff.idp.exchanges()) == 1  # cached
    assert bff.idp.exchanges()[0]["audience"] == "https://billing"
    assert bff.upstream.seen[-1].headers["authorization"] == "Bearer at-0"


async def test_exchange_refused_as_invalid_grant_ends_the_session(bff):
    bff.idp.fail = lambda form: error(400, "invalid_grant")
    async with bff.client() as c:
        r = await c.get("/billing/invoices", headers=CSRF)
        assert not c.cookies.get("__Host-bff")  # the answer cleared it
    assert r.status_code == 401 and r.json()["error"] == "session_ended"
    assert "k1" not in bff.store.rows and bff.upstream.seen == []
    assert bff.ended == ["k1"] and "max-age=0" in r.headers["set-cookie"].lower()


async def test_exchange_refused_otherwise_is_502(bff):
    bff.idp.fail = lambda form: error(400, "invalid_target")
    async with bff.client() as c:
        r = await c.get("/billing/invoices", headers=CSRF)
    assert r.status_code == 502 and r.json()["error"] == "exchange_failed"
    assert "k1" in bff.store.rows


async def test_upstream_401_drops_the_cached_exchanged_token(bff):
    async def reply(request: httpx.Request) -> httpx.Response:
        return respond(401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})

    async with bff.client() as c:
        assert (await c.get("/billing/a", headers=CSRF)).status_code == 200
        bff.upstream.reply = reply
        assert (await c.get("/billing/a", headers=CSRF)).status_code == 401
        bff.upstream.reply = None
        assert (await c.get("/billing/a", headers=CSRF)).status_code == 200
    assert len(bff.idp.exchanges()) == 2


def test_exchange_upstream_needs_an_exchanger(clock):
    b = make_bff(clock)
    with pytest.raises(ValueError):
        proxy_routes(
            [Upstream("/x", "https://x", mode="exchange", audience="a")],
            sessions=lambda r: None,  # type: ignore[arg-type,return-value]
            keeper=None,  # type: ignore[arg-type]
            exchanger=None,
            http=httpx.AsyncClient(),
            csrf=b.app.routes[0].endpoint,  # type: ignore[attr-defined]
        )


async def test_head_is_forwarded(bff):
    async with bff.client() as c:
        r = await c.head("/api/orders", headers=CSRF)
    assert r.status_code == 200 and r.content == b""
    assert bff.upstream.seen[0].method == "HEAD"


def refuse_subject(token: str):
    """idp's way (RFC 8693 §2.2.2): invalid_request for a subject token it no longer takes."""

    def fail(form):
        if form.get("subject_token") == token:
            return error(400, "invalid_request")
        return None

    return fail


async def test_refused_subject_is_refreshed_once_and_retried(bff):
    bff.idp.fail = refuse_subject("at-0")
    async with bff.client() as c:
        rs = await asyncio.gather(*(c.get("/billing/a", headers=CSRF) for _ in range(5)))
    assert [r.status_code for r in rs] == [200] * 5
    assert len(bff.idp.refreshes()) == 1
    assert {s.headers["authorization"] for s in bff.upstream.seen} == {"Bearer x[https://billing]<-at-1#2"}


async def test_refused_subject_and_refused_refresh_end_the_session(bff):
    bff.idp.fail = lambda form: error(400, "invalid_request" if "subject_token" in form else "invalid_grant")
    async with bff.client() as c:
        r = await c.get("/billing/a", headers=CSRF)
    assert r.status_code == 401 and r.json()["error"] == "session_ended"
    assert "k1" not in bff.store.rows and bff.upstream.seen == []


async def test_a_subject_refused_twice_is_502(bff):
    bff.idp.fail = lambda form: error(400, "invalid_request") if "subject_token" in form else None
    async with bff.client() as c:
        r = await c.get("/billing/a", headers=CSRF)
    assert r.status_code == 502 and r.json()["error"] == "exchange_failed"
    assert len(bff.idp.refreshes()) == 1 and len(bff.idp.exchanges()) == 2
    assert "k1" in bff.store.rows and bff.upstream.seen == []


async def test_non_ascii_header_values_and_queries_pass_as_bytes(bff):
    a = await call(
        bff.app,
        "GET",
        "/api/x?q=caf\u00e9&r=a b",
        headers={**CSRF, "Cookie": "__Host-bff=k1", "X-Name": "caf\u00e9"},
    )
    assert a.status == 200
    (seen,) = bff.upstream.seen
    assert seen.url == "https://orders.internal/v1/x?q=caf%C3%A9&r=a%20b"  # the browser's bytes, encoded once
    assert (b"x-name", "caf\u00e9".encode()) in seen.headers.raw


async def test_browser_gone_mid_upload_is_not_a_500(bff):
    async def reply(request: httpx.Request) -> httpx.Response:
        async for _ in request.stream:
            pass
        return respond(200)

    bff.upstream.reply = reply
    a = await call(
        bff.app,
        "POST",
        "/api/upload",
        headers={**CSRF, "Cookie": "__Host-bff=k1", "Content-Length": "300000"},
        body=[CHUNK] * 4,
        disconnect_after=2,
    )
    assert a.status == 400


async def test_a_cookie_one_upstream_answer_set_never_reaches_the_upstream_again(bff):
    async def reply(request: httpx.Request) -> httpx.Response:
        await request.aread()
        return respond(200, headers=[("Set-Cookie", "upstream=alice-secret; Path=/")], content=b"ok")

    bff.upstream.reply = reply
    async with bff.client() as c:
        for _ in range(2):
            assert (await c.get("/api/orders", headers=CSRF)).status_code == 200
    assert [s.headers.get("cookie") for s in bff.upstream.seen] == [None, None]


class CutShort(httpx.AsyncByteStream):
    async def __aiter__(self):  # type: ignore[override]
        yield b"12345"
        raise httpx.ReadError("connection reset")


async def test_a_small_body_cut_short_is_502_not_a_truncated_200(bff):
    async def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=[("Content-Length", "10")], stream=CutShort())

    bff.upstream.reply = reply
    async with bff.client() as c:
        r = await c.get("/api/orders", headers=CSRF)
    assert r.status_code == 502 and r.json()["error"] == "upstream_unavailable"


async def test_a_small_body_is_sent_whole_with_its_length(bff):
    async def reply(request: httpx.Request) -> httpx.Response:
        return respond(200, headers=[("Content-Length", "9")], content=b'{"id":43}')

    bff.upstream.reply = reply
    a = await call(bff.app, "GET", "/api/orders", headers={**CSRF, "Cookie": "__Host-bff=k1"})
    assert a.status == 200 and a.chunks == [b'{"id":43}']
    assert [v for k, v in a.headers if k == b"content-length"] == [b"9"]
