"""What resource servers read: ``GET /deny-list`` (snapshot) and ``GET /deny-list/events`` (SSE of SETs).

The snapshot is ``{"version": N, "entries": [...]}`` with a strong ETag and
``Cache-Control: no-cache``: caches must revalidate, and an unchanged list costs a 304.
Entries carry no reason or actor. The stream sends one event per change (``id:`` = the
version, ``event: deny``, ``data:`` = the signed SET), a ``: keepalive`` comment every
``IDP_DENYLIST_HEARTBEAT_SECONDS``, and resumes after ``Last-Event-ID``. When that id
cannot be replayed (ahead of this database, or too old) it sends ``event: resync`` and
ends: the client fetches the snapshot again. See idp.tokens.secevent for the SET format.
"""

from __future__ import annotations

import hashlib
import math

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from idp.container import Container
from idp.web.denylist_feed import feed_for


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def routes(c: Container) -> list[Route]:
    feed = feed_for(c)
    cached: list[tuple[int, float, bytes, str]] = []  # (version, valid until, body, etag)

    def document() -> tuple[bytes, str]:
        c.denylist.maybe_sync()
        if cached and cached[0][0] == c.denylist.version and c.clock.now() < cached[0][1]:
            return cached[0][2], cached[0][3]
        version, entries = c.denylist.snapshot()
        body = orjson.dumps({"version": version, "entries": [e.public() for e in entries]})
        # The body changes when the version moves, or when its first entry expires and drops out.
        valid_until = min((e.expires_at for e in entries), default=math.inf)
        cached[:] = [(version, valid_until, body, _etag(body))]
        return body, cached[0][3]

    async def deny_list(request: Request) -> Response:
        body, etag = await run_in_threadpool(document)
        headers = {"etag": etag, "cache-control": "no-cache"}
        inm = request.headers.get("if-none-match", "")
        if etag in [t.strip() for t in inm.split(",")]:  # strong comparison: no W/ match (RFC 9110 §13.1.2)
            return Response(status_code=304, headers=headers)
        return Response(body, headers=headers, media_type="application/json")

    async def events(request: Request) -> Response:
        raw = request.headers.get("last-event-id", "").strip()
        last_id: int | None = None
        if raw:
            # An id we never sent (not a small non-negative integer) gets a resync, not an error.
            last_id = int(raw) if raw.isdigit() and len(raw) <= 18 else -1
        return StreamingResponse(
            feed.open_stream(last_id),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    return [
        Route("/deny-list", deny_list, methods=["GET"]),
        Route("/deny-list/events", events, methods=["GET"]),
    ]
