"""503 ``temporarily_unavailable`` when a backing service is down, instead of a 500.

* The ephemeral store (Redis) unreachable: :class:`idp.ephemeral.StoreUnavailable`.
* The database connection lost (restart, failover, ``pg_terminate_backend``): SQLAlchemy's
  ``OperationalError`` / ``InterfaceError`` and any DBAPI error that invalidated its connection.
  The transaction was rolled back by the database; the pool drops the dead connection (and
  checks each idle one for the server's goodbye at checkout, ``idp.store.db``), so the next
  request works without a restart.

Both are transient: the answer carries ``Retry-After`` (RFC 9110 §10.2.3) and, for a browser
(``Accept: text/html``), the friendly error page instead of JSON. What failed is logged
(the service and the exception class, never keys or statements, which can hold secrets).
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ExceptionHandler

from idp.ephemeral import StoreUnavailable
from idp.errors import TemporarilyUnavailable
from idp.oauth.responses import NO_STORE, json_response
from idp.web.responses import server_error_handler
from idp.web.templating import error_page

log = logging.getLogger("idp.errors")
RETRY_AFTER = "1"


def _unavailable(request: Request, what: str) -> Response:
    exc = TemporarilyUnavailable(f"The {what} is temporarily unavailable; retry shortly.")
    headers = {**NO_STORE, "retry-after": RETRY_AFTER}
    if "text/html" in request.headers.get("accept", ""):
        return error_page(exc.error, "Please try again in a moment.", exc.status, headers)
    return json_response(exc.body(), exc.status, headers)  # RFC 6749 §4.1.2.1 / §5.2 error shape


async def store_unavailable_handler(request: Request, exc: Exception) -> Response:
    log.warning("ephemeral store unavailable on %s %s: %s", request.method, request.url.path, exc)
    return _unavailable(request, "session store")


def is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


async def database_error_handler(request: Request, exc: Exception) -> Response:
    if not is_connection_error(exc):
        return await server_error_handler(request, exc)
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, type(exc.__cause__ or exc))
    return _unavailable(request, "database")


def handlers() -> dict[type[Exception], ExceptionHandler]:
    """For ``Starlette(exception_handlers=...)``, next to the OAuthError handler."""
    return {StoreUnavailable: store_unavailable_handler, DBAPIError: database_error_handler}
