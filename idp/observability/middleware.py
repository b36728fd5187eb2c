"""Request id, one JSON access-log line and the HTTP metrics of every request.

:class:`Observe` is driven by the one pure-ASGI layer in front of the app
(:class:`idp.web.middleware.Edge`): ``begin`` when a request arrives, ``finish`` when it
is done. One layer instead of one per concern: each layer cost a coroutine and a
wrapped ``send``/``receive`` per request (bench/RESULTS.md).

* ``X-Request-ID`` is taken from the request when it is a short token of safe
  characters, otherwise generated; it is returned on the response and carried by
  every log line written while the request is served.
* The access line holds the route *template* (never the raw path or query, which
  may carry codes or ``id_token_hint``), status, latency, client id and address.
* The client id is what a handler recorded with :func:`idp.observability.context.annotate`,
  else what the request claims (HTTP Basic user name, ``client_id`` form or query
  field). The Basic password and every other form field are never kept.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from typing import Any, Protocol
from urllib.parse import unquote_plus

from starlette.types import Scope

from idp.crypto import random_hex
from idp.observability import context, logs
from idp.observability.metrics import Metrics

REQUEST_ID = re.compile(r"[A-Za-z0-9._:+=/-]{1,128}")
FORM_TYPE = b"application/x-www-form-urlencoded"
MAX_TEE = 64 * 1024
TOKEN_PATH = "/token"
LOGIN_PATH = "/login"


class ClientPeek(Protocol):
    def peek(self, client_id: str) -> Any: ...


def request_id_from(value: bytes | None) -> str | None:
    """The caller's ``X-Request-ID`` when it is safe to echo and log, else None."""
    if value is None:
        return None
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return None
    return text if REQUEST_ID.fullmatch(text) else None


def is_form(content_type: bytes | None) -> bool:
    return content_type is not None and content_type.split(b";", 1)[0].strip().lower() == FORM_TYPE


def _basic_user(value: bytes) -> str | None:
    """The client id of an HTTP Basic header (RFC 6749 §2.3.1: form-encoded). The password is dropped."""
    if value[:6].lower() != b"basic ":
        return None
    try:
        user = base64.b64decode(value[6:].strip(), validate=True).split(b":", 1)[0]
        return unquote_plus(user.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None


def _form_field(body: bytes, name: bytes) -> str | None:
    """One field of a form body, found without parsing (and unquoting) the others, which may be secrets."""
    m = re.search(rb"(?:^|&)" + name + rb"=([^&]{0,256})", body)
    if m is None:
        return None
    try:
        return unquote_plus(m.group(1).decode("latin-1")) or None
    except ValueError:
        return None


class Visit:
    """One request as the access log and the metrics see it."""

    __slots__ = ("chunks", "fields", "rid", "started", "status")

    def __init__(self, rid: str, fields: dict[str, Any], tee: bool) -> None:
        self.rid = rid
        self.started = time.perf_counter()
        self.fields = fields
        self.status = 500  # until a response starts: an exception becomes a 500 from the outer error handler
        self.chunks: list[bytes] | None = [] if tee else None  # the form body, for the claimed client id


class Observe:
    def __init__(self, *, metrics: Metrics | None = None, clients: ClientPeek | None = None) -> None:
        self.metrics = metrics
        self.clients = clients
        self.log = logging.getLogger("idp.access")

    def begin(self, request_id: bytes | None, *, tee: bool) -> Visit:
        """Opens the request's context (its id, what handlers annotate); ``tee``: keep the form body read."""
        rid = request_id_from(request_id) or random_hex(16)
        return Visit(rid, context.start(rid), tee)

    def finish(self, scope: Scope, visit: Visit, endpoint: str | None = None) -> None:
        """The access line and the metrics; never raises (observability never fails a request)."""
        try:
            self._done(scope, visit, endpoint or getattr(scope.get("route"), "path", None) or "unmatched")
        except Exception:
            logging.getLogger("idp.metrics").exception("access log / metrics failed")

    def _done(self, scope: Scope, visit: Visit, endpoint: str) -> None:
        seconds = time.perf_counter() - visit.started
        method, status, fields = scope.get("method", ""), visit.status, visit.fields
        body = b"".join(visit.chunks) if visit.chunks else b""
        client_id = fields.get("client_id") or self._claimed_client(scope, body)
        if client_id:
            client_id = client_id[:128]
        if self.metrics is not None:
            self.metrics.observe_request(endpoint, method, status, seconds)
            if endpoint == TOKEN_PATH and status == 200:
                kind = fields.get("client_type")
                if kind is None and client_id and self.clients is not None:
                    kind = getattr(self.clients.peek(client_id), "kind", None)
                grant = fields.get("grant_type") or _form_field(body, b"grant_type") or ""
                self.metrics.token_issued(grant, kind)
            elif endpoint == LOGIN_PATH and method == "POST" and status == 429:
                self.metrics.login_throttled()
        if not self.log.isEnabledFor(logging.INFO):
            return
        line: dict[str, Any] = {
            "method": method,
            "endpoint": endpoint,
            "status": status,
            "latency_ms": round(seconds * 1000, 2),
        }
        if client_id:
            line["client_id"] = client_id
        if fields.get("user_id"):
            line["user_id"] = fields["user_id"]
        if scope.get("client"):
            line["ip"] = scope["client"][0]
        batch = logs.batched_for(self.log)
        if batch is not None:  # the same JSON line, without building a LogRecord per request
            batch.info_line(self.log.name, "request", visit.rid, line)
            return
        # makeRecord + handle: the same record logger.info would build, without walking the stack for the caller.
        record = self.log.makeRecord(self.log.name, logging.INFO, __file__, 0, "request", (), None)
        record.fields, record.request_id = line, visit.rid
        self.log.handle(record)

    @staticmethod
    def _claimed_client(scope: Scope, body: bytes) -> str | None:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                user = _basic_user(value)
                if user:
                    return user
        if body and b"client_id=" in body:
            return _form_field(body, b"client_id")
        query = scope.get("query_string", b"")
        if b"client_id=" in query:
            return _form_field(query, b"client_id")
        return None
