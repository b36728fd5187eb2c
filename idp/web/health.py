"""Liveness and readiness probes."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.oauth.responses import json_response
from idp.services import Services, services_of


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


def problems(c: Services) -> list[str]:
    """What keeps this worker from serving: the database or the ephemeral store out of reach."""
    found = []
    try:
        with c.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception:
        found.append("database unreachable")
    if not c.ephemeral.ping():
        found.append("redis unreachable" if c.settings.redis_url else "ephemeral store unavailable")
    return found


async def readyz(request: Request) -> Response:
    found = await run_in_threadpool(problems, services_of(request))
    if found:
        return json_response({"status": "unavailable", "reasons": found}, 503, {"cache-control": "no-store"})
    return json_response({"status": "ready"}, headers={"cache-control": "no-store"})


ROUTES: tuple[Route, ...] = (Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"]))
