"""The features served over HTTP beside the authorization and token endpoints: introspection, revocation,
discovery and the JWKS, the deny-list feed,
the hosted pages, the admin API, the probes, the OpenAPI document; and the background work they rely on
(key rotation, following other workers' client changes)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, nullcontext

from idp.feature import Feature
from idp.oauth.feature import ASSERTION_SIGNING_ALGS, CLIENT_AUTH_METHODS
from idp.services import Services
from idp.tasks import every, started
from idp.web import authorize, denylist, health, introspection, metrics, openapi, pages, revocation, wellknown
from idp.web.admin import routes as admin_routes

KEY_TICK_SECONDS = 60.0

INTROSPECTION = Feature(
    name="introspection",
    routes=introspection.ROUTES,
    metadata=lambda s: {
        "introspection_endpoint": f"{s.issuer}/introspect",
        "introspection_endpoint_auth_methods_supported": list(CLIENT_AUTH_METHODS),
        "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_SIGNING_ALGS,
    },
    cors={"/introspect": "POST"},
)

REVOCATION = Feature(
    name="revocation",
    routes=revocation.ROUTES,
    metadata=lambda s: {
        "revocation_endpoint": f"{s.issuer}/revoke",
        # public clients revoke their own tokens (RFC 7009 §2.1)
        "revocation_endpoint_auth_methods_supported": [*CLIENT_AUTH_METHODS, "none"],
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_SIGNING_ALGS,
    },
    cors={"/revoke": "POST"},
)

DISCOVERY = Feature(
    name="discovery",
    routes=wellknown.ROUTES,
    metadata=lambda s: {"jwks_uri": f"{s.issuer}{wellknown.JWKS_PATH}"},
    public_cors={path: "GET, HEAD" for path in (*wellknown.DISCOVERY_PATHS, wellknown.JWKS_PATH)},
)


def _feed(services: Services) -> AbstractAsyncContextManager[None]:
    feed = services.denylist_feed
    return started(feed.start, feed.stop)


DENYLIST = Feature(name="deny-list", routes=denylist.ROUTES, tasks=(_feed,))

AUTHORIZATION = Feature(name="authorization", routes=authorize.ROUTES)
"""GET/POST /authorize and /authorize/resume (RFC 6749 §4.1.1, OIDC Core §3.1.2): the browser-facing half."""

HOSTED_PAGES = Feature(
    name="hosted pages",
    routes=pages.ROUTES,
    metadata=lambda s: {
        "end_session_endpoint": f"{s.issuer}/logout",
        "frontchannel_logout_supported": False,
        "ui_locales_supported": ["en"],
    },
)


ADMIN_API = Feature(name="admin API", routes=admin_routes.ROUTES)
HEALTH = Feature(name="health", routes=health.ROUTES)
OPENAPI = Feature(name="openapi", routes=openapi.ROUTES)


def _key_ticks(services: Services) -> AbstractAsyncContextManager[None]:
    return every(KEY_TICK_SECONDS, services.keyring.tick, name="key maintenance")


KEY_MAINTENANCE = Feature(name="key maintenance", tasks=(_key_ticks,))


def _follow_clients(services: Services) -> AbstractAsyncContextManager[None]:
    changes = services.client_changes
    return nullcontext() if changes is None else started(changes.start, changes.stop)


CLIENT_CHANGES = Feature(name="client changes", tasks=(_follow_clients,))
"""Only with a shared store (``services.client_changes``); without one, lookups read the change counter."""

METRICS = Feature(name="metrics", routes=metrics.ROUTES)
"""Prometheus metrics at ``/metrics``."""
