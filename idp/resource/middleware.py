"""ASGI token middleware (RFC 6750 Bearer, RFC 9449 DPoP) and a scope requirement for handlers.

``BearerAuthMiddleware(app, protector=...)`` reads ``Authorization: Bearer <token>`` or
``Authorization: DPoP <token>`` with its ``DPoP`` proof header (scheme names
case-insensitive), lets ``ResourceProtector`` decide, and puts the ``Principal`` into
``scope["state"]["principal"]`` (Starlette: ``request.state.principal``). Tokens in the
query string are refused (RFC 6750 §2.3 / OAuth 2.1). Refusals follow RFC 6750 §3 and
RFC 9449 §7.1: 401 with ``WWW-Authenticate: Bearer realm=...`` (plus ``error="invalid_token"``
when a bearer token was sent) and ``DPoP realm=..., algs="..."`` (the error in it when the
request used the DPoP scheme), 400 ``invalid_request``, 403 ``insufficient_scope``, 503 when
the revocation status cannot be known and the policy is to fail closed with 503.

A proof names the URL the client called (``htu``); the middleware compares it with the
request as this server received it: the ``Host`` header, the ASGI scheme and path. Behind a
proxy that changes them, either pass ``public_origin="https://api.example.com"`` (the
scheme, host and port clients use; the path is still the request's, so a proxy that strips
a prefix needs the server's ``root_path``, e.g. ``uvicorn --root-path /api``), or
``trust_forwarded=True`` to take them from ``X-Forwarded-Proto`` / ``X-Forwarded-Host``,
which is safe only when the proxy overwrites those headers on every request.

It also starts the protector on ``lifespan.startup`` and closes it on shutdown (and starts
it lazily on the first request if the server runs no lifespan).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import orjson

from idp.resource.errors import AuthError
from idp.resource.protector import ResourceProtector
from idp.resource.verifier import Principal

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

SCHEMES = ("bearer", "dpop")
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_HTTP_SCHEMES = {"ws": "http", "wss": "https"}
_PATH_SAFE = "/!$&'()*+,;=:@-._~"  # RFC 3986 §3.3 pchar, unencoded


def _quoted(text: str) -> str:
    return "".join(ch for ch in text if ch not in '"\\' and 0x20 <= ord(ch) < 0x7F)


def challenges(exc: AuthError, realm: str, algs: Iterable[str] = ()) -> list[str]:
    """The ``WWW-Authenticate`` challenges of a refusal: the scheme of the error, and DPoP offered next to Bearer."""
    if exc.status not in (401, 403):
        return []
    params = ""
    if exc.error:
        params += f', error="{exc.error}"'
        if exc.description:
            params += f', error_description="{_quoted(exc.description)}"'
    if exc.scope:
        params += f', scope="{_quoted(exc.scope)}"'
    if exc.acr_values:
        params += f', acr_values="{_quoted(exc.acr_values)}"'  # RFC 9470 §3
    if exc.max_age is not None:
        params += f', max_age="{int(exc.max_age)}"'  # RFC 9470 §3
    offered = f', algs="{" ".join(algs)}"' if algs else ""  # RFC 9449 §7.1: the proof algorithms accepted
    if exc.scheme == "DPoP":
        return [f'DPoP realm="{_quoted(realm)}"{params}{offered if exc.status == 401 else ""}']
    found = [f'Bearer realm="{_quoted(realm)}"{params}']
    if offered and exc.status == 401:  # RFC 9449 §7.2: a server taking both schemes challenges with both
        found.append(f'DPoP realm="{_quoted(realm)}"{offered}')
    return found


def error_parts(exc: AuthError, realm: str, algs: Iterable[str] = ()) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body: dict[str, str] = {}
    if exc.error:
        body["error"] = exc.error
        if exc.description:
            body["error_description"] = exc.description
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
    headers += [(b"www-authenticate", c.encode()) for c in challenges(exc, realm, algs)]
    if exc.nonce:  # RFC 9449 §9: the nonce the next proof must carry
        headers.append((b"dpop-nonce", exc.nonce.encode()))
    if exc.status == 503:
        headers.append((b"retry-after", b"1"))
    return exc.status, headers, orjson.dumps(body)


def credentials(scope: Scope) -> tuple[str, str] | None:
    """(scheme, token) from ``Authorization: Bearer|DPoP``; AuthError for a malformed or misplaced one."""
    values = [v for k, v in scope.get("headers", []) if k == b"authorization"]
    if b"access_token=" in scope.get("query_string", b"") and "access_token" in parse_qs(
        scope["query_string"].decode("latin-1")
    ):
        # RFC 6750 §2.3 / OAuth 2.1 §5.2: never in the URI (logs, Referer).
        raise AuthError(400, "invalid_request", "access tokens are not accepted in the query string")
    if not values:
        return None
    if len(values) > 1:
        raise AuthError(400, "invalid_request", "more than one Authorization header")
    scheme, _, token = values[0].decode("latin-1").strip().partition(" ")
    scheme = scheme.lower()  # RFC 9110 §11.1: scheme names are case-insensitive
    if scheme not in SCHEMES:  # RFC 6750 §2.1, RFC 9449 §7.1
        return None
    token = token.strip()
    if not token or " " in token:
        raise AuthError(400, "invalid_request", f"malformed {scheme} token")
    return scheme, token


def bearer_token(scope: Scope) -> str | None:
    """The token from ``Authorization: Bearer``; AuthError for a malformed or misplaced one."""
    found = credentials(scope)
    return found[1] if found is not None and found[0] == "bearer" else None


def dpop_proofs(scope: Scope) -> list[str]:
    """Every ``DPoP`` header value (the protector refuses anything but exactly one)."""
    return [v.decode("latin-1").strip() for k, v in scope.get("headers", []) if k == b"dpop"]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def request_url(scope: Scope, *, public_origin: str | None = None, trust_forwarded: bool = False) -> str:
    """The request's URL without query, as the client addressed it (the ``htu`` a proof must name)."""
    path = quote(scope.get("path") or "/", safe=_PATH_SAFE + "%")
    if public_origin is not None:
        return public_origin + path
    scheme = str(scope.get("scheme") or "http").lower()
    scheme = _HTTP_SCHEMES.get(scheme, scheme)  # a WebSocket handshake is an HTTP GET of that URL
    host = _header(scope, b"host")
    if trust_forwarded:  # only behind a proxy that overwrites these headers (documented in the module)
        proto = _header(scope, b"x-forwarded-proto")
        forwarded_host = _header(scope, b"x-forwarded-host")
        scheme = proto.split(",")[0].strip().lower() if proto else scheme
        host = forwarded_host.split(",")[0].strip() if forwarded_host else host
    if not host:
        server = scope.get("server")
        host = f"{server[0]}:{server[1]}" if server else "localhost"
    host = host.lower()
    name, colon, port = host.rpartition(":")
    if colon and "]" not in port and port == _DEFAULT_PORTS.get(scheme):  # RFC 3986 §6.2.3: no default port
        host = name
    return f"{scheme}://{host}{path}"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") or parts.query:
        raise ValueError("public_origin is scheme://host[:port], e.g. https://api.example.com")
    netloc = parts.netloc.lower()
    name, colon, port = netloc.rpartition(":")
    if colon and port == _DEFAULT_PORTS[parts.scheme]:
        netloc = name
    return f"{parts.scheme}://{netloc}"


class BearerAuthMiddleware:
    def __init__(
        self,
        app: Any,
        *,
        protector: ResourceProtector,
        public_paths: Iterable[str] = (),
        realm: str = "api",
        public_origin: str | None = None,
        trust_forwarded: bool = False,
    ) -> None:
        self.app = app
        self.protector = protector
        self.public_paths = frozenset(public_paths)
        self.realm = realm
        self.public_origin = _origin(public_origin) if public_origin is not None else None
        self.trust_forwarded = trust_forwarded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._lifespan_receive(receive), send)
            return
        if scope["type"] not in ("http", "websocket") or scope.get("path") in self.public_paths:
            await self.app(scope, receive, send)
            return
        dpop = self.protector.dpop
        try:
            found = credentials(scope)
            if found is None:  # RFC 6750 §3.1: no error code when no credentials were sent
                raise AuthError(401, None, scheme="DPoP" if dpop.required else "Bearer")
            scheme, token = found
            principal = await self.protector.authenticate(
                token,
                scheme=scheme,
                proofs=dpop_proofs(scope) if scheme == "dpop" else (),
                method=str(scope.get("method", "GET")),  # RFC 9449 §4.3 (8): htm
                url=request_url(scope, public_origin=self.public_origin, trust_forwarded=self.trust_forwarded),
            )
        except AuthError as exc:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await self._refuse(send, exc)
            return
        scope.setdefault("state", {})["principal"] = principal
        if principal.jkt is not None and dpop.nonces is not None:
            send = _with_nonce(send, dpop.nonces.current())
        await self.app(scope, receive, send)

    def _lifespan_receive(self, receive: Receive) -> Receive:
        async def wrapped() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.protector.start()
            elif message["type"] == "lifespan.shutdown":
                await self.protector.aclose()
            return message

        return wrapped

    async def _refuse(self, send: Send, exc: AuthError) -> None:
        status, headers, body = error_parts(exc, self.realm, self.protector.dpop.algs)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _with_nonce(send: Send, nonce: str) -> Send:
    """RFC 9449 §9: hand the client the current nonce with every answer, so it follows the rotation."""

    async def sending(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"dpop-nonce", nonce.encode())]}
        await send(message)

    return sending


def principal_of(request: Any) -> Principal | None:
    """The caller's principal (set by the middleware), from a Starlette request or an ASGI scope."""
    scope = getattr(request, "scope", request)
    state = scope.get("state") or {}
    principal = state.get("principal")
    return principal if isinstance(principal, Principal) else None


def requires_scope(*scopes: str, realm: str = "api") -> Callable[[Any], Any]:
    """Decorate a Starlette endpoint: 403 ``insufficient_scope`` unless the token holds every scope."""
    needed = frozenset(scopes)

    def decorator(endpoint: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(endpoint)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            from starlette.responses import Response

            request = next(a for a in args if hasattr(a, "scope"))
            principal = principal_of(request)
            if principal is None:
                status, headers, body = error_parts(AuthError(401, None), realm)
            elif not needed <= principal.scopes:  # RFC 6750 §3.1 insufficient_scope, in the scheme used
                exc = AuthError(403, "insufficient_scope", "the token lacks a required scope", " ".join(scopes),
                                scheme="Bearer" if principal.jkt is None else "DPoP")  # fmt: skip
                status, headers, body = error_parts(exc, realm)
            else:
                return await endpoint(*args, **kwargs)
            return Response(body, status, headers={k.decode(): v.decode() for k, v in headers})

        return wrapper

    return decorator
