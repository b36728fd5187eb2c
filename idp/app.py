"""create_app(): the composition root for HTTP. Nothing is created at import time."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from idp.bootstrap import bootstrap, format_demo
from idp.config import Settings, load_settings
from idp.container import Container, build_container
from idp.errors import OAuthError
from idp.observability.logs import configure_logging
from idp.observability.middleware import Observe
from idp.web import unavailable
from idp.web.cors import Cors, own_origin
from idp.web.middleware import Edge
from idp.web.responses import oauth_error_handler, server_error_handler
from idp.web.wellknown import DISCOVERY_PATHS, JWKS_PATH, StaticDocuments

log = logging.getLogger("idp")

# Each module exposes ``routes(container) -> list[BaseRoute]``. No paths overlap; the hot endpoints come
# first because Starlette matches routes in order (measured: ~30 µs per token request with /token last).
ROUTE_MODULES = [
    "idp.oauth.endpoints",
    "idp.web.wellknown",
    "idp.web.introspection",
    "idp.web.revocation",
    "idp.web.health",
    "idp.web.denylist",
    "idp.web.pages",
    "idp.web.admin.routes",
    "idp.web.admin.denylist",
    "idp.web.metrics",
    "idp.web.openapi",
]
KEY_TICK_SECONDS = 60.0
# What browsers may call cross-origin (idp.web.cors): path -> the methods it serves.
CORS_PUBLIC = {path: "GET, HEAD" for path in (*DISCOVERY_PATHS, JWKS_PATH)}
CORS_CLIENTS = {"/token": "POST", "/userinfo": "GET, POST", "/revoke": "POST", "/introspect": "POST"}


def _routes(c: Container) -> list[BaseRoute]:
    out: list[BaseRoute] = []
    for name in ROUTE_MODULES:
        out.extend(importlib.import_module(name).routes(c))
    return out


async def _key_maintenance(c: Container) -> None:
    while True:
        await asyncio.sleep(KEY_TICK_SECONDS)
        try:
            await run_in_threadpool(c.keyring.tick)
        except Exception:
            log.exception("key maintenance failed; will retry")


def create_app(settings: Settings | None = None, *, container: Container | None = None) -> Starlette:
    owned = container is None
    c = container or build_container(settings or load_settings())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        demo = await run_in_threadpool(bootstrap, c)
        if demo:
            print(format_demo(demo, reveal=c.settings.local_trial), flush=True)
        hooks = c.extras.get("startup_hooks", [])
        for hook in hooks:
            await hook()
        task = asyncio.create_task(_key_maintenance(c))
        try:
            yield
        finally:
            task.cancel()
            for hook in c.extras.get("shutdown_hooks", []):
                await hook()
            if owned:
                c.close()

    app = Starlette(
        routes=_routes(c),
        middleware=[
            # One layer: request id, access log, metrics, 413 over 64 KiB, security headers, discovery and JWKS.
            Middleware(
                Edge,
                observe=Observe(metrics=c.extras.get("metrics"), clients=c.clients),
                max_body=64 * 1024,
                static=StaticDocuments(c).get,
                always=_always_headers(c.settings),
            ),
            # Inside Edge: preflights get the request id and the access line; Edge's static documents carry `*`.
            Middleware(
                Cors,
                public=CORS_PUBLIC,
                restricted=CORS_CLIENTS,
                origins=c.clients,
                own_origin=own_origin(c.settings.issuer),
            ),
        ],
        exception_handlers={OAuthError: oauth_error_handler, **unavailable.handlers(), Exception: server_error_handler},
        lifespan=lifespan,
    )
    app.state.container = c
    return app


def _always_headers(settings: Settings) -> list[tuple[bytes, bytes]]:
    hsts = settings.strict_transport_security
    return [(b"strict-transport-security", hsts.encode("latin-1"))] if hsts else []


def app_from_env() -> Starlette:
    """uvicorn factory: ``uvicorn --factory idp.app:app_from_env``."""
    configure_logging(load_settings().log_level)  # JSON lines (idp.observability.logs)
    return create_app()
