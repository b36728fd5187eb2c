"""CORS for browser clients (the Fetch standard's CORS protocol) as one pure-ASGI layer: :class:`Cors`.

* Public documents (discovery, JWKS): any origin may read them, ``Access-Control-Allow-Origin: *``.
* Client endpoints (token, userinfo, revocation, introspection): only the origins the client
  registry names (:meth:`idp.clients.registry.ClientRegistry.cors_origins`: the https redirect-URI
  origins of public clients and the origins an operator added to a client) and our own. A request from
  any other origin is refused with 403 before it runs, so a page that could not read the answer cannot
  spend a code or a refresh token either. These answers depend on ``Origin``: they carry ``Vary: Origin``.
* That set is every client's together, so each endpoint then checks the origin against the one client
  the request is for (:func:`idp.clients.origins.check_client_origin`, once the client is authenticated or, at userinfo,
  the token names it): an origin registered by client A does not let a page call for client B.
  Preflights carry no client and are answered from the set.
* Never ``Access-Control-Allow-Credentials``: no endpoint here reads cookies, and a browser sends
  neither cookies nor HTTP authentication it was not given explicitly.

Preflights (``OPTIONS`` with ``Access-Control-Request-Method``) are answered here with 204; any
other ``OPTIONS`` goes on to the router (405).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from idp.clients.origins import DESCRIPTION

Headers = list[tuple[bytes, bytes]]

ALLOW_HEADERS = b"Authorization, Content-Type, DPoP"
EXPOSE_HEADERS = b"DPoP-Nonce, WWW-Authenticate"  # RFC 9449 §8: the client must read the nonce it is given
VARY = b"vary"
ORIGIN = b"origin"
REQUEST_METHOD = b"access-control-request-method"
REFUSED = b'{"error":"invalid_request","error_description":"' + DESCRIPTION.encode() + b'"}'


class OriginSource(Protocol):
    def peek_cors_origins(self) -> frozenset[str] | None:
        """The allowed origins without I/O, or None when they must be loaded."""
        ...

    def cors_origins(self) -> frozenset[str]:
        """The allowed origins (may block)."""
        ...


class Cors:
    """``public`` and ``restricted`` map a path to the methods it serves (e.g. ``{"/token": "POST"}``).

    ``own_origin`` (the issuer's) is always allowed; ``max_age`` is how long a browser may keep a preflight.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        public: Mapping[str, str],
        restricted: Mapping[str, str],
        origins: OriginSource,
        own_origin: str,
        max_age: int = 600,
    ) -> None:
        self.app = app
        self.origins = origins
        self.own = own_origin
        self.max_age = str(max_age).encode()
        self.public = {path: methods.encode() for path, methods in public.items()}
        self.restricted = {path: methods.encode() for path, methods in restricted.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        public = self.public.get(path)
        methods = public or self.restricted.get(path)
        if methods is None:
            await self.app(scope, receive, send)
            return
        origin = preflight = None
        for name, value in scope["headers"]:
            if name == ORIGIN:
                origin = value
            elif name == REQUEST_METHOD:
                preflight = value
        is_preflight = scope["method"] == "OPTIONS" and origin is not None and preflight is not None
        if public is not None:
            if is_preflight:
                star = [(b"access-control-allow-origin", b"*")]
                await _answer(send, 204, [*star, *self._preflight(methods)], vary=False)
            else:
                await self.app(scope, receive, _adding(send, [(b"access-control-allow-origin", b"*")], vary=False))
            return
        if origin is None:  # not a browser's cross-origin call; the answer still depends on Origin
            await self.app(scope, receive, _adding(send, [], vary=True))
            return
        if not await self._allowed(origin.decode("latin-1")):
            await _answer(send, 403, [(b"content-type", b"application/json"), (b"cache-control", b"no-store")], REFUSED)
            return
        allow = [(b"access-control-allow-origin", origin)]
        if is_preflight:
            await _answer(send, 204, [*allow, *self._preflight(methods)])
            return
        await self.app(scope, receive, _adding(send, [*allow, (b"access-control-expose-headers", EXPOSE_HEADERS)]))

    async def _allowed(self, origin: str) -> bool:
        if origin == self.own:
            return True
        origins = self.origins.peek_cors_origins()
        if origins is None:
            origins = await run_in_threadpool(self.origins.cors_origins)
        return origin in origins

    def _preflight(self, methods: bytes) -> Headers:
        return [
            (b"access-control-allow-methods", methods),
            (b"access-control-allow-headers", ALLOW_HEADERS),
            (b"access-control-max-age", self.max_age),
        ]


def _adding(send: Send, extra: Headers, *, vary: bool = True) -> Send:
    """``send`` with ``extra`` headers (and ``Origin`` in ``Vary``) on the response start."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [h for h in message.get("headers", ()) if not (vary and h[0].lower() == VARY)]
            if vary:
                before = [v for k, v in message.get("headers", ()) if k.lower() == VARY]
                headers.append((VARY, b", ".join([*before, b"Origin"])))
            names = {k.lower() for k, _ in headers}
            headers.extend(h for h in extra if h[0] not in names)
            message["headers"] = headers
        await send(message)

    return wrapped


async def _answer(send: Send, status: int, headers: Headers, body: bytes = b"", *, vary: bool = True) -> None:
    start = [*headers, (VARY, b"Origin")] if vary else list(headers)
    if status != 204:  # RFC 9110 §8.6: no Content-Length on a 204
        start.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})
