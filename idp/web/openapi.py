"""GET /openapi.json: the OpenAPI 3.1 description of the public endpoints.

The document is the file ``openapi_public.json`` beside this module (the admin API has
its own, ``/admin/openapi.json``). ``tests/robustness/test_openapi.py`` keeps it true:
every route of the app is described by one of the two, every described operation exists,
and schemathesis fuzzes the app against it.
"""

from __future__ import annotations

import importlib.resources
import json
from functools import cache, lru_cache
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.services import services_of

SPEC_FILE = importlib.resources.files("idp.web").joinpath("openapi_public.json")  # package data


@cache
def load_spec() -> dict[str, Any]:
    return json.loads(SPEC_FILE.read_text(encoding="utf-8"))


def spec_for(issuer: str) -> dict[str, Any]:
    return {**load_spec(), "servers": [{"url": issuer}]}


@lru_cache(maxsize=8)
def _body(issuer: str) -> bytes:
    return json.dumps(spec_for(issuer), ensure_ascii=False).encode()


async def openapi(request: Request) -> Response:
    # Public on purpose: it describes the endpoints, it grants nothing.
    body = _body(services_of(request).settings.issuer)
    return Response(body, media_type="application/json", headers={"cache-control": "public, max-age=3600"})


ROUTES: tuple[Route, ...] = (Route("/openapi.json", openapi, methods=["GET"]),)
