"""Admin API for the deny-list: list, add, remove entries.

``GET /admin/deny-list``, ``POST /admin/deny-list`` ({"kind", "value", "reason", "until"?}),
``DELETE /admin/deny-list/{id}`` (``?reason=``). Same protection as the rest of /admin
(:mod:`idp.web.admin.auth`: a client-credentials access token for ``ISSUER/admin`` with
scope ``idp:admin``, itself checked against the deny-list); errors are RFC 7807 problems.
Entries name their author as ``admin:CLIENT_ID`` in the entry and its audit event.
"""

from __future__ import annotations

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.denylist.entries import KINDS, MAX_VALUE
from idp.services import services_of
from idp.web.admin.auth import AdminPrincipal
from idp.web.admin.problems import NO_STORE, Problem, admin_endpoint, field, json_body, json_ok


async def list_entries(request: Request, admin: AdminPrincipal) -> Response:
    c = services_of(request)

    def load() -> dict[str, object]:
        version = c.denylist.version
        return {"version": version, "entries": [e.admin() for e in c.denylist.list()]}

    return json_ok(await run_in_threadpool(load))


async def add_entry(request: Request, admin: AdminPrincipal) -> Response:
    c = services_of(request)
    data = await json_body(request)
    kind = field(data, "kind", str, required=True)
    value = field(data, "value", str, required=True)
    reason = field(data, "reason", str, required=True)
    until = data.get("until")
    if until is not None and (isinstance(until, bool) or not isinstance(until, int | float)):
        raise Problem(422, "'until' must be a number (epoch seconds).", code="invalid_field")
    if kind not in KINDS:
        raise Problem(422, f"'kind' must be one of {', '.join(KINDS)}.", code="invalid_field")
    if not 0 < len(value) <= MAX_VALUE or len(reason) > 300:
        raise Problem(422, f"'value' must be 1..{MAX_VALUE} characters, 'reason' at most 300.", code="invalid_field")
    until = None if until is None else float(until)
    # A subject entry means every token of the user: DenyAdmin revokes the refresh tokens too.
    entry = await run_in_threadpool(c.deny_admin.deny, kind, value, reason=reason, actor=admin.actor, until=until)
    location = f"{c.settings.issuer}/admin/deny-list/{entry.id}"
    headers = {**NO_STORE, "location": location}
    return Response(orjson.dumps(entry.admin()), 201, headers=headers, media_type="application/json")


async def remove_entry(request: Request, admin: AdminPrincipal) -> Response:
    c = services_of(request)
    raw = request.path_params["entry_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise Problem(404, "No live deny-list entry with this id.", code="not_found")
    reason = request.query_params.get("reason", "")[:300]
    removed = await run_in_threadpool(c.denylist.remove, int(raw), actor=admin.actor, reason=reason)
    if not removed:
        raise Problem(404, "No live deny-list entry with this id.", code="not_found")
    return Response(status_code=204, headers=NO_STORE)


ROUTES: tuple[Route, ...] = (
    admin_endpoint("/admin/deny-list", list_entries, ["GET"]),
    admin_endpoint("/admin/deny-list", add_entry, ["POST"]),
    admin_endpoint("/admin/deny-list/{entry_id}", remove_entry, ["DELETE"]),
)
