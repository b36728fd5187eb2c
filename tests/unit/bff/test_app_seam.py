"""The app factory mounts the proxy's routes (one pair per configured upstream) after the BFF's own, with the
shared Bff: its store, its CsrfGuard and its session lookup; extra routes come last."""

from __future__ import annotations

import base64
import secrets

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

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
