"""Every /admin route of this package, plus the OpenAPI document that describes the admin API."""

from __future__ import annotations

import importlib.resources
import json
from functools import cache, lru_cache
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from idp.services import services_of
from idp.web.admin import audit, clients, denylist, keys, logout, users

SPEC_FILE = importlib.resources.files("idp.web.admin").joinpath("openapi.json")  # package data


@cache
def load_spec() -> dict[str, Any]:
    return json.loads(SPEC_FILE.read_text(encoding="utf-8"))


def spec_for(issuer: str) -> dict[str, Any]:
    spec = dict(load_spec())
    spec["servers"] = [{"url": issuer}]
    return spec


@lru_cache(maxsize=8)
def _body(issuer: str) -> bytes:
    return json.dumps(spec_for(issuer), indent=1).encode()


async def openapi(request: Request) -> Response:
    # Public on purpose: it describes the API, it grants nothing. Serialised on first request, not at start-up.
    body = _body(services_of(request).settings.issuer)
    return Response(body, media_type="application/json", headers={"cache-control": "public, max-age=3600"})


ROUTES: tuple[BaseRoute, ...] = (
    Route("/admin/openapi.json", openapi, methods=["GET"]),
    *clients.ROUTES,
    *users.ROUTES,
    *keys.ROUTES,
    *audit.ROUTES,
    *denylist.ROUTES,
    *logout.ROUTES,
)
