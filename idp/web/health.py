"""Liveness and readiness probes."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.services import Services
from idp.web.responses import json_response


def routes(c: Services) -> list[Route]:
    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    def _check() -> list[str]:
        problems = []
        try:
            with c.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except Exception:
            problems.append("database unreachable")
        if not c.ephemeral.ping():
            problems.append("redis unreachable" if c.settings.redis_url else "ephemeral store unavailable")
        return problems

    async def readyz(request: Request) -> Response:
        problems = await run_in_threadpool(_check)
        if problems:
            return json_response({"status": "unavailable", "reasons": problems}, 503, {"cache-control": "no-store"})
        return json_response({"status": "ready"}, headers={"cache-control": "no-store"})

    return [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
