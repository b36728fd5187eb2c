"""Per-request context: the request id and what the handlers learned (client id, grant type).

The access-log middleware opens a fresh context for every request; any layer
(routes, the protocol core running in the threadpool, which copies the context)
may ``annotate`` it. The log line and the metrics read it when the response is
done. Imports nothing, so the core may use it.
"""

from __future__ import annotations

import contextvars
from typing import Any

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("idp_request_id", default=None)
_fields: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("idp_request_fields", default=None)

# Only these keys are kept: the access log must never carry a secret by accident.
ALLOWED = frozenset({"client_id", "client_type", "grant_type", "user_id"})


def start(request_id: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    _request_id.set(request_id)
    _fields.set(fields)
    return fields


def request_id() -> str | None:
    return _request_id.get()


def annotate(**values: Any) -> None:
    """Record facts about the current request (``client_id=``, ``client_type=``, ``grant_type=``, ``user_id=``)."""
    fields = _fields.get()
    if fields is None:
        return
    for key, value in values.items():
        if key in ALLOWED and isinstance(value, str) and value:
            fields[key] = value[:128]
