"""The one pure-ASGI layer in front of the app (:class:`Edge`).

Per request, in one pass over the request headers and one over the response start:
the request id, access line and metrics (:mod:`idp.observability.middleware`), the
request body cap, the security headers, and the static documents (discovery, JWKS)
answered from ready bytes and headers without the router. One layer, not one
middleware per concern: each layer costs a coroutine and a wrapped ``send`` per request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from idp.observability.middleware import MAX_TEE, Observe, Visit, is_form

Header = tuple[bytes, bytes]
Headers = list[Header]

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self' http: https:; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
NOSNIFF = (b"x-content-type-options", b"nosniff")
HTML_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
STATIC_METHODS = frozenset({"GET", "HEAD"})


def secured(status: int, headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    """nosniff everywhere; CSP, frame and referrer protection and no-store on HTML (RFC 9700 §4.16, §4.2.4)."""
    out = list(headers)
    content_type = next((v for k, v in out if k.lower() == b"content-type"), b"")
    html = status in (302, 303) or content_type.startswith(b"text/html")
    names = {k.lower() for k, _ in out} if html else ()
    out.append(NOSNIFF)
    if html:
        out.extend(h for h in HTML_HEADERS if h[0] not in names)
    return out


class StaticDocument(Protocol):
    def answer(self, if_none_match: bytes | None) -> tuple[int, Headers, bytes]:
        """(status, headers with the security headers, body): 200, or 304 when the ETag matches."""
        ...


class Edge:
    """Request id, access log and metrics; 413 for bodies over ``max_body``; security headers; static documents.

    ``static(path)`` returns the document served at ``path`` (GET and HEAD), or None for the router.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        observe: Observe,
        max_body: int = 64 * 1024,
        static: Callable[[str], StaticDocument | None] | None = None,
        always: Iterable[Header] = (),
    ) -> None:
        self.app = app
        self.observe = observe
        self.max_body = max_body
        self.static = static
        self.always = tuple(always)  # on every response, e.g. Strict-Transport-Security on an https issuer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = content_type = None
        too_big = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                too_big = too_big or not _fits(value, self.max_body)
            elif name == b"content-type":
                content_type = content_type or value
            elif name == b"x-request-id":
                request_id = request_id or value
        method = scope["method"]
        visit = self.observe.begin(request_id, tee=method == "POST" and is_form(content_type))
        tail = [*self.always, (b"x-request-id", visit.rid.encode())]
        endpoint = None
        try:
            if too_big:
                visit.status = 413
                await _too_large(send, tail)
            elif self.static and method in STATIC_METHODS and (document := self.static(scope["path"])) is not None:
                endpoint = scope["path"]  # the route template of a static document is its path
                visit.status = await _serve(document, scope, send, tail)
            else:
                await self._call_app(scope, receive, send, visit, tail)
        finally:
            self.observe.finish(scope, visit, endpoint)

    async def _call_app(self, scope: Scope, receive: Receive, send: Send, visit: Visit, tail: Headers) -> None:
        chunks = visit.chunks
        limit = self.max_body
        seen = 0

        async def receive_capped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                seen += len(body)
                if seen > limit:
                    raise _BodyTooLarge
                if chunks is not None and seen <= MAX_TEE:
                    chunks.append(body)
            return message

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = visit.status = message["status"]
                headers = secured(status, message.get("headers", ()))
                headers.extend(tail)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive_capped, send_secured)
        except _BodyTooLarge:
            visit.status = 413
            await _too_large(send, tail)


def _fits(value: bytes, limit: int) -> bool:
    try:
        return int(value) <= limit
    except ValueError:
        return False


async def _serve(document: StaticDocument, scope: Scope, send: Send, tail: Headers) -> int:
    inm = next((v for k, v in scope["headers"] if k == b"if-none-match"), None)
    status, headers, body = document.answer(inm)
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *tail]})
    await send({"type": "http.response.body", "body": body if scope["method"] == "GET" else b""})
    return status


class _BodyTooLarge(BaseException):
    """Not an Exception: a route's ``except Exception`` (the hosted pages have one) must not turn it into a 500."""


TOO_LARGE = b'{"error":"invalid_request","error_description":"Request body too large."}'


async def _too_large(send: Send, tail: Headers) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(TOO_LARGE)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": [*secured(413, headers), *tail]})
    await send({"type": "http.response.body", "body": TOO_LARGE})
