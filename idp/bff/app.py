"""``create_bff_app``: the BFF as one ASGI app (serve it alone, or mount it at ``/`` of another app).

Routes, in order: the BFF's own under ``/bff`` (:mod:`idp.bff.endpoints`); then the proxy's, one pair per
configured upstream (:func:`idp.bff.proxy.routes`, called once per app with the shared
:class:`idp.bff.context.Bff`); then ``extra_routes``; then, with ``static_dir``, the SPA's files
(``index.html`` for ``/``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from idp.bff import endpoints, proxy
from idp.bff.config import BffSettings
from idp.bff.context import Bff
from idp.bff.errors import json_error
from idp.bff.oidc import OidcClient
from idp.bff.sealing import SessionCrypto
from idp.bff.session import SessionStore
from idp.bff.stores import open_store
from idp.clock import Clock, SystemClock

log = logging.getLogger("idp.bff")


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("BFF request failed", exc_info=exc)
    return json_error(500, "server_error", "unexpected error")


def _no_cookies() -> CookieJar:
    """A jar that keeps nothing: the client serves every user's upstream calls (and idp's token endpoint,
    which sets none), so a cookie an answer sets must not be kept, let alone grow with each name an
    upstream invents."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


async def _close(owned: Sequence[Any]) -> None:
    for thing in owned:
        if isinstance(thing, httpx.AsyncClient):
            await thing.aclose()
        else:
            await thing.close()


def _close_unused(owned: Sequence[Any]) -> None:
    """Close what the factory opened, from sync code that may run under an event loop (so on a fresh loop in a
    thread of its own). Nothing has used these objects yet, so none of them is bound to a loop."""
    if not owned:
        return
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(_close(owned))
        except BaseException as exc:  # reported, not raised: the factory's own error is the one that matters
            failure.append(exc)

    closer = threading.Thread(target=run, name="bff-close-unused")
    closer.start()
    closer.join()
    if failure:
        log.warning("closing the BFF's store or client after a failed start failed", exc_info=failure[0])


def create_bff_app(
    settings: BffSettings,
    *,
    store: SessionStore | None = None,
    http: httpx.AsyncClient | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    static_dir: Path | None = None,
) -> Starlette:
    """``transport`` carries every request to idp (Authlib's and the JWKS's; tests pass an ASGITransport);
    ``http`` is the client for idp's JWKS and token endpoint (refresh, exchange) and for the upstreams
    (default: one made on ``transport``). Objects passed in are
    not closed by the app; those it makes are, at shutdown, or before the factory re-raises when building the
    app fails (e.g. overlapping upstream prefixes)."""
    clock = clock or SystemClock()
    crypto = SessionCrypto(settings.key())
    owned: list[Any] = []
    if store is None:
        store = open_store(settings.store_url, crypto, clock, prefix=settings.store_prefix)
        owned.append(store)
    if http is None:
        http = httpx.AsyncClient(transport=transport, timeout=10.0, follow_redirects=False, cookies=_no_cookies())
        owned.append(http)
    oidc = OidcClient(
        issuer=settings.issuer,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        scopes=settings.scopes,
        transport=transport,
    )
    try:
        bff = Bff(settings=settings, store=store, crypto=crypto, clock=clock, oidc=oidc, http=http,
                  upstreams=settings.upstreams)  # fmt: skip
        routes: list[BaseRoute] = [*endpoints.routes(bff), *proxy.routes(bff), *extra_routes]
        if static_dir is not None:
            routes.append(Mount("/", app=StaticFiles(directory=static_dir, html=True), name="static"))
    except BaseException:
        _close_unused(owned)
        raise

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await _close(owned)

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={Exception: _server_error})
    app.state.bff = bff
    return app
