"""Discovery documents and the JWKS, served as pre-serialised bytes with strong ETags."""

from __future__ import annotations

import hashlib

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.container import Container


def _conditional(request: Request, body: bytes, etag: str, max_age: int) -> Response:
    headers = {"etag": etag, "cache-control": f"public, max-age={max_age}"}
    inm = request.headers.get("if-none-match")
    if inm and etag in [t.strip().removeprefix("W/") for t in inm.split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(body, headers=headers, media_type="application/json")


def routes(c: Container) -> list[Route]:
    meta_body = orjson.dumps(c.metadata)
    meta_etag = '"' + hashlib.sha256(meta_body).hexdigest()[:32] + '"'

    async def discovery(request: Request) -> Response:
        return _conditional(request, meta_body, meta_etag, 3600)

    async def jwks(request: Request) -> Response:
        doc = c.jwks.current()
        return _conditional(request, doc.body, doc.etag, c.settings.jwks_max_age)

    return [
        Route("/.well-known/openid-configuration", discovery, methods=["GET"]),
        Route("/.well-known/oauth-authorization-server", discovery, methods=["GET"]),
        Route("/jwks.json", jwks, methods=["GET"]),
    ]
