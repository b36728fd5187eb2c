"""Two APIs behind the BFF (docs/sessions-and-jwts.md): each checks the bearer token with ``idp.resource``
against idp's JWKS, for an audience of its own, and answers the claims it verified (never the token).

* **orders** (``https://orders.example``) sits behind a ``forward`` upstream: it gets the user's own access
  token, so the BFF's client is registered with ``--audience`` naming it.
* **billing** (``https://billing.example``) sits behind an ``exchange`` upstream: the BFF trades the user's
  token (RFC 8693) for one minted for billing alone; its ``act`` claim names the BFF's client.

Run both next to idp::

    IDP_ISSUER=http://127.0.0.1:8000 API_AUDIENCE=https://orders.example \\
        uvicorn --factory examples.bff_apis:orders_from_env --port 9001
    IDP_ISSUER=http://127.0.0.1:8000 API_AUDIENCE=https://billing.example \\
        uvicorn --factory examples.bff_apis:billing_from_env --port 9002
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from idp.resource import BearerAuthMiddleware, ResourceProtector, principal_of

# What an API may echo of the token it verified: who, for whom, on whose behalf. Not the token itself,
# nor its jti (an echo a page's script reads is one more place a token's handle leaks to).
ECHOED = ("sub", "aud", "client_id", "act", "scope", "iss", "exp")


def create_api(name: str, protector: ResourceProtector) -> Starlette:
    """An API answering every GET/POST with ``{"api": name, "path": ..., <the verified claims in ECHOED>}``."""

    async def echo(request: Request) -> JSONResponse:
        principal = principal_of(request)
        assert principal is not None  # the middleware let the request through
        claims = {k: principal.claims[k] for k in ECHOED if k in principal.claims}
        return JSONResponse({"api": name, "path": request.url.path, **claims})

    return Starlette(
        routes=[Route("/{rest:path}", echo, methods=["GET", "POST"])],
        middleware=[Middleware(BearerAuthMiddleware, protector=protector)],
    )


def _from_env(name: str) -> Starlette:
    issuer = os.environ["IDP_ISSUER"]
    # follow=False: no deny-list stream (it needs a client with deny-list:read, see examples/resource_server.py).
    protector = ResourceProtector(issuer=issuer, audience=os.environ["API_AUDIENCE"], follow=False)
    return create_api(name, protector)


def orders_from_env() -> Starlette:
    return _from_env("orders")


def billing_from_env() -> Starlette:
    return _from_env("billing")
