"""GET /metrics: Prometheus text format, behind a bearer token.

Accepted: the static ``IDP_METRICS_TOKEN`` (what a Prometheus ``authorization``
block sends) or an ``idp:admin`` access token. Alternatively ``IDP_METRICS_PORT``
makes ``idp serve`` expose an unauthenticated copy on a private interface
(:mod:`idp.observability.serve`).
"""

from __future__ import annotations

import hashlib
import hmac

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.errors import InvalidToken
from idp.services import services_of
from idp.web.admin.auth import bearer_token, verify_admin_token


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(hashlib.sha256(a.encode()).digest(), hashlib.sha256(b.encode()).digest())


async def scrape(request: Request) -> Response:
    c = services_of(request)
    token = bearer_token(request)
    if token is None:
        raise InvalidToken("A bearer token is required.")
    static = c.settings.metrics_token
    if not (static and _same(token, static)):
        await run_in_threadpool(verify_admin_token, c, token)
    body = await run_in_threadpool(c.metrics.render)
    return Response(body, headers={"cache-control": "no-store", "content-type": CONTENT_TYPE_LATEST})


ROUTES: tuple[Route, ...] = (Route("/metrics", scrape, methods=["GET"]),)
