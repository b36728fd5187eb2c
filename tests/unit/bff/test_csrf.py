"""The BFF's CSRF check: custom header, exact Origin, Sec-Fetch-Site; usable as a guard, a decorator and
a middleware."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from idp.bff.csrf import CsrfGuard, CsrfMiddleware, canonical_origin

ORIGIN = "https://app.example.com"
guard = CsrfGuard(ORIGIN)


def h(**kw: str) -> Headers:
    return Headers({k.replace("_", "-"): v for k, v in kw.items()})


def test_header_alone_passes():
    assert guard.problem(h(x_csrf="1")) is None


@pytest.mark.parametrize("headers", [{}, {"x_csrf": "0"}, {"x_csrf": ""}, {"x_csrf": "true"}, {"x_xsrf": "1"}])
def test_header_is_required(headers):
    assert "X-CSRF" in guard.problem(h(**headers))


def test_origin_required_when_asked():
    assert guard.problem(h(x_csrf="1"), require_origin=True) == "the request names no Origin"
    assert guard.problem(h(x_csrf="1", origin=ORIGIN), require_origin=True) is None
    assert guard.problem(h(x_csrf="1", origin="https://evil.example.com"), require_origin=True) is not None


@pytest.mark.parametrize("origin", [ORIGIN, "https://APP.example.com", "https://app.example.com:443"])
def test_same_origin_passes(origin):
    assert guard.problem(h(x_csrf="1", origin=origin, sec_fetch_site="same-origin")) is None


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example.com",  # same-site sibling: SameSite would let its cookie through
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://app.example.com.evil.test",
        "null",
        "",
        "https://app.example.com/path",
        "https://user@app.example.com",
    ],
)
def test_other_origins_fail(origin):
    assert guard.problem(h(x_csrf="1", origin=origin)) == "the request comes from another origin"


@pytest.mark.parametrize("site", ["same-site", "cross-site", "none"])
def test_fetch_metadata_must_be_same_origin(site):
    assert guard.problem(h(x_csrf="1", origin=ORIGIN, sec_fetch_site=site)) == "the request is not same-origin"


def test_header_name_and_value_are_configurable():
    g = CsrfGuard(ORIGIN, header="X-Requested-By", value="spa")
    assert g.problem(h(x_requested_by="spa")) is None
    assert g.problem(h(x_csrf="1")) is not None


def test_public_origin_is_validated():
    with pytest.raises(ValueError):
        CsrfGuard("app.example.com")
    assert canonical_origin("http://[::1]:80") == "http://[::1]"


async def _logout(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


@pytest.fixture
async def client():
    app = Starlette(
        routes=[
            Route("/bff/logout", guard.protect(_logout), methods=["POST"]),
            Route("/bff/other", _logout, methods=["GET", "POST"]),
            Route("/bffx", _logout, methods=["POST"]),
        ]
    )
    wrapped = CsrfMiddleware(app, guard, ["/bff/other"], all_methods=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(wrapped), base_url=ORIGIN) as c:
        yield c


async def test_decorated_endpoint(client):
    r = await client.post("/bff/logout")
    assert r.status_code == 403 and r.json()["error"] == "csrf_failed"
    assert r.headers["cache-control"] == "no-store"
    assert (await client.post("/bff/logout", headers={"X-CSRF": "1", "Origin": ORIGIN})).status_code == 200
    r = await client.post("/bff/logout", headers={"X-CSRF": "1", "Origin": "https://evil.example.com"})
    assert r.status_code == 403


async def test_middleware_covers_its_prefixes_and_unsafe_methods(client):
    assert (await client.post("/bff/other")).status_code == 403
    assert (await client.post("/bff/other", headers={"X-CSRF": "1"})).status_code == 200
    assert (await client.get("/bff/other")).status_code == 200  # all_methods=False: GET is a navigation
    assert (await client.post("/bffx")).status_code == 200  # segment-aligned: not under /bff/other


async def test_middleware_all_methods():
    app = Starlette(routes=[Route("/api/x", _logout, methods=["GET"])])
    wrapped = CsrfMiddleware(app, guard, ["/api"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(wrapped), base_url=ORIGIN) as c:
        assert (await c.get("/api/x")).status_code == 403
        assert (await c.get("/api/x", headers={"X-CSRF": "1"})).status_code == 200
