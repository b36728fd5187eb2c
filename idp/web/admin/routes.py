"""Every /admin route of this package, plus the OpenAPI document that describes the admin API."""

from __future__ import annotations

import importlib.resources
import json
from functools import cache
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from idp.container import Container
from idp.web.admin import audit, clients, keys, users

SPEC_FILE = importlib.resources.files("idp.web.admin").joinpath("openapi.json")  # package data


@cache
def load_spec() -> dict[str, Any]:
    return json.loads(SPEC_FILE.read_text(encoding="utf-8"))


def spec_for(issuer: str) -> dict[str, Any]:
    spec = dict(load_spec())
    spec["servers"] = [{"url": issuer}]
    return spec


def routes(c: Container) -> list[BaseRoute]:
    cached: list[bytes] = []  # serialised on first request, not at start-up

    async def openapi(request: Request) -> Response:
        # Public on purpose: it describes the API, it grants nothing.
        if not cached:
            cached.append(json.dumps(spec_for(c.settings.issuer), indent=1).encode())
        return Response(cached[0], media_type="application/json", headers={"cache-control": "public, max-age=3600"})

    return [
        Route("/admin/openapi.json", openapi, methods=["GET"]),
        *clients.routes(c),
        *users.routes(c),
        *keys.routes(c),
        *audit.routes(c),
    ]
