"""What resource servers read: ``/deny-list`` (snapshot) and ``/deny-list/events`` (SSE of SETs).

Who may read: a confidential client that authenticates exactly as at the introspection
endpoint (:func:`idp.oauth.client_auth.authenticate_client`; RFC 6749 §2.3) and whose
registration includes the scope ``deny-list:read``. ``GET`` carries the credentials in
``Authorization: Basic`` (``client_secret_basic``); ``POST`` with a form body takes any
method the client is registered with (``client_secret_post``, ``private_key_jwt``).
No credentials or wrong ones: 401 ``invalid_client``; a client without the scope: 403
``insufficient_scope``. The feed names users, sessions and clients: nobody else reads it.

The snapshot is ``{"version": N, "entries": [...]}`` with a strong ETag and
``Cache-Control: no-cache``: caches must revalidate, and an unchanged list costs
a 304. Entries carry no reason or actor. The stream opens with the changes after
``Last-Event-ID`` when they are few (signed SETs), otherwise (no ``Last-Event-ID``, or one
unknown, ahead or too far behind) with ``event: snapshot`` (``id:`` = its version,
``data:`` = the snapshot document); then one event per change (``id:`` = the version, ``event: deny``, ``data:`` =
the signed SET) and a ``: keepalive`` comment every ``IDP_DENYLIST_HEARTBEAT_SECONDS``.
``event: resync`` (then the stream ends) asks the client to reconnect: with its ``Last-Event-ID``
for the tail, or without one for a fresh snapshot (what idp.resource does). An open stream ends
once its client is disabled, deleted, loses the scope or has its secret or keys replaced (checked
every 30 s). See idp.denylist.secevent for the SET format, idp.denylist.feed for the streams.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from idp.clients.model import Client
from idp.denylist.feed import FEED_SCOPE, may_read, still_allowed
from idp.errors import InsufficientScope, InvalidClient, OAuthError
from idp.oauth.client_auth import authenticate_client
from idp.oauth.responses import NO_STORE, json_response, oauth_error_response
from idp.services import Services, services_of


async def feed_reader(request: Request, c: Services) -> Client:
    """The authenticated client allowed to read the feed; InvalidClient (401) or InsufficientScope (403)."""
    form: dict[str, str] | None = {} if request.method == "GET" else None  # a GET has no body: Basic only
    client = await authenticate_client(request, c, endpoint="deny-list", form=form)
    if not may_read(client):
        raise InsufficientScope(f"The client is not registered with the {FEED_SCOPE} scope.")
    return client


def _refusal(exc: OAuthError) -> Response:
    """401 with a Basic challenge (RFC 9110 §15.5.2: a 401 carries one); 403 without a Bearer challenge:
    the feed takes client authentication, not access tokens."""
    if isinstance(exc, InvalidClient):
        return oauth_error_response(exc, basic_auth_used=True)
    return json_response(exc.body(), exc.status, NO_STORE)


class _Stream(StreamingResponse):
    """Frees the stream's slot when the response ends, even if the client left before the first event."""

    def __init__(self, content: object, release: Callable[[], None], **kw: object) -> None:
        super().__init__(content, **kw)  # type: ignore[arg-type]
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


async def deny_list(request: Request) -> Response:
    c = services_of(request)
    try:
        await feed_reader(request, c)
    except (InvalidClient, InsufficientScope) as exc:
        return _refusal(exc)
    snap = await run_in_threadpool(c.denylist_feed.snapshot)
    headers = {"etag": snap.etag, "cache-control": "no-cache"}
    inm = request.headers.get("if-none-match", "")
    if snap.etag in [t.strip() for t in inm.split(",")]:  # strong comparison: no W/ match (RFC 9110 §13.1.2)
        # RFC 9110 §13.1.2: 304 for GET; any other method must not proceed: 412.
        return Response(status_code=304 if request.method == "GET" else 412, headers=headers)
    return Response(snap.body, headers=headers, media_type="application/json")


async def events(request: Request) -> Response:
    c = services_of(request)
    try:
        reader = await feed_reader(request, c)
    except (InvalidClient, InsufficientScope) as exc:
        return _refusal(exc)
    raw = request.headers.get("last-event-id", "").strip()
    last_id: int | None = None
    if raw:
        # An id we never sent (not a small non-negative integer) gets the snapshot, not an error.
        last_id = int(raw) if raw.isdigit() and len(raw) <= 18 else -1
    clients = c.clients
    content, release = c.denylist_feed.open_stream(last_id, reader.client_id, lambda: still_allowed(clients, reader))
    return _Stream(
        content,
        release,
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


ROUTES: tuple[Route, ...] = (
    Route("/deny-list", deny_list, methods=["GET", "POST"]),
    Route("/deny-list/events", events, methods=["GET", "POST"]),
)
