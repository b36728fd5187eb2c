"""RFC 7807 problem details for the admin API, and the route wrapper every admin endpoint uses.

``admin_endpoint(path, handler, methods)`` authenticates the caller with
:func:`idp.web.admin.auth.require_admin` and renders anything raised as
``application/problem+json``: :class:`Problem` as given, the OAuth errors of the
token check with their status and ``WWW-Authenticate`` (RFC 6750 §3), lookups
that found nothing as 404, validation errors as 422. Every admin response is
``Cache-Control: no-store`` (some carry a secret, shown once).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.clients.model import ClientValidationError
from idp.errors import InsufficientScope, InvalidToken, OAuthError
from idp.services import services_of
from idp.users.directory import UserError
from idp.web.admin.auth import REALM, AdminPrincipal, require_admin

log = logging.getLogger("idp.admin")
PROBLEM_TYPE = "application/problem+json"
NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
AdminHandler = Callable[[Request, AdminPrincipal], Awaitable[Response]]


class Problem(Exception):
    def __init__(self, status: int, detail: str, *, code: str = "", title: str = "") -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code or HTTPStatus(status).phrase.lower().replace(" ", "_")
        self.title = title or HTTPStatus(status).phrase


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response:
    body = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "code": problem.code,
    }
    all_headers = {**NO_STORE, **(headers or {})}
    return Response(orjson.dumps(body), problem.status, headers=all_headers, media_type=PROBLEM_TYPE)


def json_ok(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, headers=NO_STORE, media_type="application/json")


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object (an empty body is ``{}``)."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    raw = await request.body()
    if not raw:
        return {}
    if ctype and ctype != "application/json" and not ctype.endswith("+json"):
        raise Problem(415, "Send a JSON body (Content-Type: application/json).")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Problem(400, "The body is not valid JSON.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise Problem(400, "The body must be a JSON object.", code="invalid_json")
    return data


def field(data: dict[str, Any], name: str, kind: type, default: object = None, *, required: bool = False) -> Any:
    """One typed member of a JSON body; 422 when it has the wrong type or is missing."""
    if name not in data or data[name] is None:
        if required:
            raise Problem(422, f"'{name}' is required.", code="invalid_field")
        return default
    value = data[name]
    ok = isinstance(value, kind) and not (isinstance(value, bool) and kind in (int, float))
    if ok and isinstance(value, list):
        ok = all(isinstance(v, str) for v in value)
    if not ok:
        raise Problem(422, f"'{name}' has the wrong type.", code="invalid_field")
    return value


def _render(exc: Exception) -> Response:
    if isinstance(exc, Problem):
        return problem_response(exc)
    if isinstance(exc, OAuthError) and isinstance(exc, InvalidToken | InsufficientScope):
        if exc.detail:
            log.info("admin API refused a token: %s", exc.detail)
        desc = exc.description.replace('"', "'")
        challenge = f'Bearer realm="{REALM}", error="{exc.error}", error_description="{desc}"'
        if isinstance(exc, InsufficientScope):
            challenge += ', scope="idp:admin"'
        return problem_response(Problem(exc.status, exc.description, code=exc.error), {"www-authenticate": challenge})
    if isinstance(exc, OAuthError):
        return problem_response(Problem(exc.status, exc.description or exc.error, code=exc.error))
    if isinstance(exc, ClientValidationError | UserError | ValueError):
        return problem_response(Problem(422, str(exc), code="invalid_field"))
    if isinstance(exc, LookupError):
        return problem_response(Problem(404, str(exc).strip("'\"") or "Not found.", code="not_found"))
    log.exception("admin API failed")
    return problem_response(Problem(500, "The server could not complete the request.", code="server_error"))


def admin_endpoint(path: str, handler: AdminHandler, methods: list[str]) -> Route:
    """The route of an admin handler: the caller is authenticated first, with the services from the lifespan
    state (handlers reach them with :func:`idp.services.services_of`); any error becomes a problem document."""

    async def endpoint(request: Request) -> Response:
        try:
            principal = await require_admin(services_of(request), request)
            return await handler(request, principal)
        except Exception as exc:
            return _render(exc)

    endpoint.__name__ = getattr(handler, "__name__", "admin")
    return Route(path, endpoint, methods=methods)
