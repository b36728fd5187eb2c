"""The app factory's seam: the proxy module's routes(bff) are mounted after the BFF's own, with the shared Bff."""

from __future__ import annotations

import base64
import importlib.machinery
import secrets
import sys
import types
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from idp.bff.app import PROXY_MODULE, create_bff_app
from idp.bff.config import load_bff_settings
from idp.bff.context import Bff

SETTINGS = load_bff_settings(
    issuer="https://idp.example", origin="https://app.example", upstreams="/api=http://127.0.0.1:9001",
    encryption_key=base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode(),
)  # fmt: skip


async def test_proxy_routes_are_mounted(monkeypatch: pytest.MonkeyPatch) -> None:
    given: list[Bff] = []

    def routes(bff: Bff) -> list[Any]:
        given.append(bff)

        async def ping(request: Request) -> JSONResponse:
            session = await bff.session_of(request)
            return JSONResponse({"signed_in": session is not None, "upstreams": [u.prefix for u in bff.upstreams]})

        return [Route("/api/ping", ping), Route("/bff/user", ping)]  # cannot shadow the BFF's own

    fake = types.ModuleType(PROXY_MODULE)
    fake.__spec__ = importlib.machinery.ModuleSpec(PROXY_MODULE, None)
    fake.routes = routes  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, PROXY_MODULE, fake)
    app = create_bff_app(SETTINGS)
    assert given == [app.state.bff]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://app.example") as c:
        assert (await c.get("/api/ping")).json() == {"signed_in": False, "upstreams": ["/api"]}
        assert (await c.get("/bff/user")).status_code == 401


async def test_extra_routes_come_last() -> None:
    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"hello": True})

    app = create_bff_app(SETTINGS, extra_routes=[Route("/hello", hello)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://app.example") as c:
        assert (await c.get("/hello")).json() == {"hello": True}


def test_a_proxy_module_without_the_hook_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType(PROXY_MODULE)
    fake.__spec__ = importlib.machinery.ModuleSpec(PROXY_MODULE, None)
    monkeypatch.setitem(sys.modules, PROXY_MODULE, fake)
    with pytest.raises(RuntimeError, match="routes"):
        create_bff_app(SETTINGS)
