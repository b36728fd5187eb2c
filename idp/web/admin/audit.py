"""/admin/audit: audit events, newest first, filtered by subject, action and time; paged with ``before``."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.observability.audit import MAX_LIMIT, event_dict, parse_since
from idp.services import services_of
from idp.web.admin.auth import AdminPrincipal
from idp.web.admin.problems import Problem, admin_endpoint, json_ok

PARAMS = frozenset({"subject", "action", "since", "before", "limit"})


def _int(value: str | None, name: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or not low <= int(value) <= high:
        raise Problem(400, f"'{name}' must be a number from {low} to {high}.", code="invalid_parameter")
    return int(value)


async def list_events(request: Request, admin: AdminPrincipal) -> Response:
    c = services_of(request)
    q = request.query_params
    if any(len(q.getlist(k)) > 1 for k in PARAMS):
        raise Problem(400, "Each parameter may be given once.", code="invalid_parameter")
    since = None
    if q.get("since"):
        try:
            since = parse_since(q["since"], c.clock.now())
        except ValueError as exc:
            raise Problem(400, str(exc), code="invalid_parameter") from None
    limit = _int(q.get("limit"), "limit", 1, MAX_LIMIT) or 100
    before = _int(q.get("before"), "before", 1, 2**62)
    subject, action = q.get("subject") or None, q.get("action") or None
    if (subject and len(subject) > 200) or (action and len(action) > 64):
        raise Problem(400, "'subject' or 'action' is too long.", code="invalid_parameter")
    events = await run_in_threadpool(
        c.audit.query, subject=subject, action=action, since=since, before=before, limit=limit
    )
    page = [event_dict(e) for e in events]
    return json_ok({"events": page, "next_before": page[-1]["id"] if len(page) == limit else None})


ROUTES: tuple[Route, ...] = (admin_endpoint("/admin/audit", list_events, ["GET"]),)
