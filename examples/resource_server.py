"""A tiny API protected by ``idp.resource``: local JWT verification plus the pushed deny-list.

Register the API at the IdP as a service client that may read the deny-list feed (it also
introspects with these credentials)::

    idp clients create --name "Orders API" --type service --scope deny-list:read \\
        --audience http://127.0.0.1:8000/api

and run it next to the IdP (callers get tokens for it from clients created with
``--audience http://127.0.0.1:8000/api --scope "api:read api:write"``)::

    IDP_ISSUER=http://127.0.0.1:8000 API_AUDIENCE=http://127.0.0.1:8000/api \\
        API_CLIENT_ID=... API_CLIENT_SECRET=... \\
        uvicorn --factory examples.resource_server:app_from_env --port 8080

    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/orders

DPoP-bound tokens (RFC 9449) are accepted with their proofs (``Authorization: DPoP``). Behind a
proxy, ``API_PUBLIC_ORIGIN=https://api.example.com`` is the origin clients call (their proofs name
it); ``API_DPOP_REQUIRED=1`` refuses bearer tokens; with several workers, ``API_REDIS_URL`` gives
them one replay cache of proofs.

Optional: ``API_ON_STALE=introspect`` asks the IdP's introspection endpoint while the
deny-list stream is silent, instead of refusing every token (``API_STALE_STATUS=401|503``)
once the stream has been silent for ``API_STALE_AFTER`` seconds (25).
"""

from __future__ import annotations

import os

import redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from idp.resource import BearerAuthMiddleware, RedisReplayCache, ResourceProtector, principal_of, requires_scope

ORDERS = [{"id": 1, "item": "coffee"}, {"id": 2, "item": "tea"}]


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def me(request: Request) -> JSONResponse:
    p = principal_of(request)
    assert p is not None  # the middleware let the request through
    return JSONResponse({"sub": p.sub, "client_id": p.client_id, "scopes": sorted(p.scopes)})


@requires_scope("api:read")
async def list_orders(request: Request) -> JSONResponse:
    return JSONResponse(ORDERS)


@requires_scope("api:write")
async def create_order(request: Request) -> JSONResponse:
    return JSONResponse({"id": len(ORDERS) + 1}, status_code=201)


def create_app(protector: ResourceProtector, *, public_origin: str | None = None) -> Starlette:
    guard = {"protector": protector, "public_paths": {"/health"}, "public_origin": public_origin}
    return Starlette(
        routes=[
            Route("/health", health),
            Route("/me", me),
            Route("/orders", list_orders, methods=["GET"]),
            Route("/orders", create_order, methods=["POST"]),
        ],
        middleware=[Middleware(BearerAuthMiddleware, **guard)],
    )


def app_from_env() -> Starlette:
    issuer = os.environ["IDP_ISSUER"]
    redis_url = os.environ.get("API_REDIS_URL")
    replay = RedisReplayCache(redis.Redis.from_url(redis_url)) if redis_url else None  # else in-process
    protector = ResourceProtector(
        issuer=issuer,
        audience=os.environ.get("API_AUDIENCE", f"{issuer}/api"),
        base_url=os.environ.get("IDP_URL") or None,
        on_stale="introspect" if os.environ.get("API_ON_STALE") == "introspect" else "fail_closed",
        stale_status=503 if os.environ.get("API_STALE_STATUS") == "503" else 401,
        stale_after=float(os.environ.get("API_STALE_AFTER", "25")),
        client=(os.environ["API_CLIENT_ID"], os.environ["API_CLIENT_SECRET"]),  # scope deny-list:read
        dpop_required=os.environ.get("API_DPOP_REQUIRED") == "1",
        dpop_replay=replay,
    )
    return create_app(protector, public_origin=os.environ.get("API_PUBLIC_ORIGIN") or None)
