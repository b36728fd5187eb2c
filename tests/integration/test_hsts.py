"""Strict-Transport-Security (RFC 6797): on every response of an https issuer, never on an http (loopback) one."""

from __future__ import annotations

import httpx
import pytest
from asgi_lifespan import LifespanManager

from idp.app import create_app
from idp.config import ConfigError, load_settings
from idp.services import Services

HSTS = "max-age=63072000; includeSubDomains"


async def responses(client: httpx.AsyncClient) -> dict[str, httpx.Response]:
    """One response of each kind the app makes: static document, JSON API, OAuth error, HTML page,
    redirect, 404, and the 413 answered before the router."""
    return {
        "discovery": await client.get("/.well-known/openid-configuration"),
        "jwks": await client.get("/jwks.json"),
        "health": await client.get("/healthz"),
        "token error": await client.post("/token", data={"grant_type": "client_credentials"}),
        "login page": await client.get("/login"),
        "authorize redirect or error": await client.get("/authorize", params={"client_id": "nobody"}),
        "not found": await client.get("/no-such-page"),
        "too large": await client.post("/token", content=b"x" * (65 * 1024)),
    }


async def test_an_https_issuer_sends_hsts_on_every_response(client: httpx.AsyncClient) -> None:
    for kind, r in (await responses(client)).items():
        assert r.headers.get("strict-transport-security") == HSTS, (kind, r.status_code)
        assert r.headers.get_list("strict-transport-security") == [HSTS], kind  # exactly once


@pytest.mark.parametrize("settings_overrides", [{"issuer": "http://127.0.0.1:8000"}])
async def test_an_http_issuer_never_sends_hsts(container: Services) -> None:
    async with LifespanManager(create_app(services=container), startup_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            for kind, r in (await responses(client)).items():
                assert "strict-transport-security" not in r.headers, (kind, r.status_code)


@pytest.mark.parametrize("settings_overrides", [{"hsts": "max-age=300"}])
async def test_the_value_is_a_setting(client: httpx.AsyncClient) -> None:
    assert (await client.get("/jwks.json")).headers["strict-transport-security"] == "max-age=300"


@pytest.mark.parametrize("settings_overrides", [{"hsts": ""}])
async def test_an_empty_setting_sends_none(client: httpx.AsyncClient) -> None:
    assert "strict-transport-security" not in (await client.get("/jwks.json")).headers


def test_a_malformed_value_is_refused_at_start() -> None:
    for bad in ("includeSubDomains", "max-age=abc", "max-age=1\r\nSet-Cookie: x=1"):
        with pytest.raises(ConfigError, match="IDP_HSTS"):
            load_settings(hsts=bad)
