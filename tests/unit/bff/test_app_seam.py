"""The app factory mounts the proxy's routes (one pair per configured upstream) after the BFF's own, with the
shared Bff: its store, its CsrfGuard and its session lookup; extra routes come last."""

from __future__ import annotations

import asyncio
import base64
import secrets

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import idp.bff.app as app_module
from idp.bff.app import create_bff_app
from idp.bff.config import load_bff_settings
from idp.bff.refresh import TokenKeeper

KEY = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
SETTINGS = load_bff_settings(
    issuer="https://idp.example", origin="https://app.example", upstreams="/api=http://127.0.0.1:9001",
    encryption_key=KEY, client_id="bff", client_secret="s",
)  # fmt: skip


async def test_proxy_routes_are_mounted_from_settings() -> None:
    app = create_bff_app(SETTINGS)
    bff = app.state.bff
    keeper = bff.state["token_keeper"]
    assert isinstance(keeper, TokenKeeper) and keeper.store is bff.store
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://app.example") as c:
        r = await c.get("/api/orders", headers={"X-CSRF": "1"})
        assert r.status_code == 401 and r.json()["error"] == "session_required"
        r = await c.get("/api/orders")  # the app's CsrfGuard, before any session lookup
        assert r.status_code == 403 and r.json()["error"] == "csrf_failed"
        assert (await c.get("/bff/user")).status_code == 401


async def test_no_upstreams_no_proxy_routes() -> None:
    app = create_bff_app(
        load_bff_settings(issuer="https://idp.example", origin="https://app.example", encryption_key=KEY)
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://app.example") as c:
        assert (await c.get("/api/orders", headers={"X-CSRF": "1"})).status_code == 404
    assert "token_keeper" not in app.state.bff.state


async def test_extra_routes_come_last() -> None:
    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"hello": True})

    app = create_bff_app(SETTINGS, extra_routes=[Route("/hello", hello), Route("/api/shadow", hello)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://app.example") as c:
        assert (await c.get("/hello")).json() == {"hello": True}
        assert (await c.get("/api/shadow", headers={"X-CSRF": "1"})).status_code == 401  # the proxy's


class Spy:
    def __init__(self) -> None:
        self.closed = 0

    async def close(self) -> None:
        self.closed += 1


def refuse(bff: object) -> list[object]:
    raise ValueError("upstream prefixes overlap: '/api'")


@pytest.mark.parametrize("under_a_loop", [False, True])
def test_a_failed_start_closes_what_the_app_opened(monkeypatch: pytest.MonkeyPatch, under_a_loop: bool) -> None:
    store = Spy()
    clients: list[httpx.AsyncClient] = []

    class Client(httpx.AsyncClient):
        def __init__(self, **kw: object) -> None:
            super().__init__(**kw)  # type: ignore[arg-type]
            clients.append(self)

    monkeypatch.setattr(app_module, "open_store", lambda *a, **kw: store)
    monkeypatch.setattr(app_module.httpx, "AsyncClient", Client)
    monkeypatch.setattr(app_module.proxy, "routes", refuse)

    def start() -> None:
        with pytest.raises(ValueError, match="overlap"):
            create_bff_app(SETTINGS)

    if under_a_loop:

        async def inside() -> None:
            start()

        asyncio.run(inside())
    else:
        start()
    assert store.closed == 1
    assert len(clients) == 1 and clients[0].is_closed


def test_a_failed_start_leaves_what_was_passed_in_open(monkeypatch: pytest.MonkeyPatch) -> None:
    store = Spy()
    http = httpx.AsyncClient()
    monkeypatch.setattr(app_module.proxy, "routes", refuse)
    with pytest.raises(ValueError):
        create_bff_app(SETTINGS, store=store, http=http)  # type: ignore[arg-type]
    assert store.closed == 0 and not http.is_closed


def test_the_client_the_app_makes_keeps_no_cookies() -> None:
    http = create_bff_app(SETTINGS).state.bff.http
    request = httpx.Request("GET", "http://127.0.0.1:9001/orders")
    answer = httpx.Response(200, headers=[("Set-Cookie", "upstream=alice; Path=/")], request=request)
    http.cookies.extract_cookies(answer)
    assert list(http.cookies.jar) == []
