"""create_app(): the composition root for HTTP. Nothing is created at import time."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from idp.bootstrap import bootstrap, format_demo
from idp.clients.origins import own_origin
from idp.config import Settings, load_settings
from idp.errors import OAuthError
from idp.feature import Feature
from idp.logout.feature import BACKCHANNEL_LOGOUT
from idp.oauth.discovery import assemble
from idp.oauth.feature import GRANT_PURGE, TOKEN
from idp.oauth.token.grant import GrantRegistry
from idp.observability.logs import configure_logging
from idp.observability.middleware import Observe
from idp.services import Services, build_services
from idp.web import unavailable
from idp.web.cors import Cors
from idp.web.feature import (
    ADMIN_API,
    AUTHORIZATION,
    CLIENT_CHANGES,
    DENYLIST,
    DISCOVERY,
    HEALTH,
    HOSTED_PAGES,
    INTROSPECTION,
    KEY_MAINTENANCE,
    METRICS,
    OPENAPI,
    REVOCATION,
)
from idp.web.middleware import Edge
from idp.web.responses import oauth_error_handler, server_error_handler
from idp.web.wellknown import StaticDocuments

# The features the server runs, in route order: Starlette matches routes in order, so the hot endpoints come
# first. No paths overlap. Adding a feature: declare a Feature in its package and list it here.
DEFAULT_FEATURES: tuple[Feature, ...] = (
    CLIENT_CHANGES,  # tasks only; first, so other workers' client changes are followed before anything runs
    TOKEN,
    AUTHORIZATION,
    GRANT_PURGE,
    DISCOVERY,
    INTROSPECTION,
    REVOCATION,
    HEALTH,
    DENYLIST,
    HOSTED_PAGES,
    ADMIN_API,
    METRICS,
    OPENAPI,
    KEY_MAINTENANCE,
    BACKCHANNEL_LOGOUT,  # tasks and discovery fields only
)


def grant_registry(features: Sequence[Feature]) -> GrantRegistry:
    """The token endpoint's grants: every feature's, in feature order."""
    return GrantRegistry(grant for f in features for grant in f.grants)


def discovery_document(settings: Settings, features: Sequence[Feature]) -> dict[str, object]:
    """The features' discovery fields; ``grant_types_supported`` is what the registry serves (RFC 8414 §2)."""
    parts = [f.metadata(settings) for f in features if f.metadata is not None]
    return assemble([*parts, {"grant_types_supported": grant_registry(features).grant_types}])


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    features: Sequence[Feature] = DEFAULT_FEATURES,
    settle_heap: bool = False,
) -> Starlette:
    """The app of ``features`` over ``services`` (built from ``settings`` and closed at shutdown when not
    given). The lifespan state carries ``services`` and the static ``documents`` to every request. With
    ``settle_heap`` (a server process: :func:`app_from_env`), start-up ends with :func:`settle`."""
    owned = services is None
    c = services or build_services(settings or load_settings())
    grants = grant_registry(features)
    routes: list[BaseRoute] = [route for f in features for route in f.routes_for(grants)]
    metadata = discovery_document(c.settings, features)
    documents = StaticDocuments(c, metadata)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
        async with contextlib.AsyncExitStack() as stack:
            if owned:
                stack.callback(c.close)
            demo = await run_in_threadpool(bootstrap, c)
            if demo:
                print(format_demo(demo, reveal=c.settings.local_trial), flush=True)
            for feature in features:
                for event_type, handler in feature.handlers(c) if feature.handlers else ():
                    stack.callback(c.events.subscribe(event_type, handler))
                for task in feature.tasks:
                    await stack.enter_async_context(task(c))
            if settle_heap:
                settle()
            yield {"services": c, "documents": documents}

    return Starlette(
        routes=routes,
        middleware=[
            # One layer: request id, access log, metrics, 413 over 64 KiB, security headers, discovery and JWKS.
            Middleware(
                Edge,
                observe=Observe(metrics=c.metrics, clients=c.clients),
                max_body=64 * 1024,
                static=documents.get,
                always=_always_headers(c.settings),
            ),
            # Inside Edge: preflights get the request id and the access line; Edge's static documents carry `*`.
            # What browsers may call cross-origin (idp.web.cors): path -> the methods it serves.
            Middleware(
                Cors,
                public={path: methods for f in features for path, methods in f.public_cors.items()},
                restricted={path: methods for f in features for path, methods in f.cors.items()},
                origins=c.clients,
                own_origin=own_origin(c.settings.issuer),
            ),
        ],
        exception_handlers={OAuthError: oauth_error_handler, **unavailable.handlers(), Exception: server_error_handler},
        lifespan=lifespan,
    )


def _always_headers(settings: Settings) -> list[tuple[bytes, bytes]]:
    hsts = settings.strict_transport_security
    return [(b"strict-transport-security", hsts.encode("latin-1"))] if hsts else []


def settle() -> None:
    """Move what start-up made into the garbage collector's permanent generation (``gc.freeze``).

    A full (generation 2) collection walks every tracked object: the modules, the services, the compiled
    SQL, the keys. In a worker that is about 100 ms with the GIL held, a stall every request in flight
    waits out, several times a minute under load (it was the p99 of every bench row, discovery included).
    Frozen, those objects are skipped: a full collection then walks what was made since, 2-5 ms. For
    server processes only: frozen objects are never collected, and a test process builds many apps."""
    gc.collect()
    gc.freeze()


def app_from_env() -> Starlette:
    """uvicorn factory: ``uvicorn --factory idp.app:app_from_env``."""
    configure_logging(load_settings().log_level)  # JSON lines (idp.observability.logs)
    return create_app(settle_heap=True)
