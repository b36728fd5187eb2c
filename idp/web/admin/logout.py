"""/admin/logout-deliveries: the back-channel logout outbox for an operator (:mod:`idp.logout.admin`)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.logout.admin import MAX_LIST, DeliveryQueryError, list_deliveries, retry_dead
from idp.services import services_of
from idp.web.admin.auth import AdminPrincipal
from idp.web.admin.problems import Problem, admin_endpoint, field, json_body, json_ok


async def list_logout_deliveries(request: Request, admin: AdminPrincipal) -> Response:
    c = services_of(request)
    q = request.query_params
    raw_limit = q.get("limit", "100")
    if not raw_limit.isdigit() or len(raw_limit) > 4:
        raise Problem(422, f"'limit' must be 1..{MAX_LIST}.", code="invalid_field")
    client_id = q.get("client_id") or None

    def load() -> list[dict[str, object]]:
        rows = list_deliveries(c, state=q.get("state") or None, client_id=client_id, limit=int(raw_limit))
        return [d.view() for d in rows]

    try:
        deliveries = await run_in_threadpool(load)
    except DeliveryQueryError as exc:
        raise Problem(422, str(exc) + ".", code="invalid_field") from None
    return json_ok({"deliveries": deliveries})


async def retry_logout_deliveries(request: Request, admin: AdminPrincipal) -> Response:
    c = services_of(request)
    data = await json_body(request)
    unknown = set(data) - {"ids", "client_id"}
    if unknown:
        raise Problem(422, f"unknown field(s): {', '.join(sorted(unknown))}", code="invalid_field")
    ids = field(data, "ids", list, [])
    client_id = field(data, "client_id", str)
    if len(ids) > 1000 or any(len(i) > 32 for i in ids) or (client_id is not None and len(client_id) > 64):
        raise Problem(422, "at most 1000 ids of at most 32 characters; client_id at most 64.", code="invalid_field")
    try:
        revived = await run_in_threadpool(lambda: retry_dead(c, actor=admin.actor, ids=ids, client_id=client_id))
    except DeliveryQueryError as exc:
        raise Problem(422, str(exc) + ".", code="invalid_field") from None
    return json_ok({"retried": revived})


ROUTES: tuple[Route, ...] = (
    admin_endpoint("/admin/logout-deliveries", list_logout_deliveries, ["GET"]),
    admin_endpoint("/admin/logout-deliveries/retry", retry_logout_deliveries, ["POST"]),
)
