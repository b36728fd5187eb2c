"""ASGI bearer-token middleware and a scope requirement for handlers (RFC 6750).

``BearerAuthMiddleware(app, protector=...)`` reads ``Authorization: Bearer`` (scheme
case-insensitive), lets ``ResourceProtector`` decide, and puts the ``Principal`` into
``scope["state"]["principal"]`` (Starlette: ``request.state.principal``). Tokens in the
query string are refused (RFC 6750 §2.3 / OAuth 2.1). Refusals follow RFC 6750 §3: 401
with ``WWW-Authenticate: Bearer realm=...`` (plus ``error="invalid_token"`` when a token
was sent), 400 ``invalid_request``, 403 ``insufficient_scope``, 503 when the revocation
status cannot be known and the policy is to fail closed with 503.

It also starts the protector on ``lifespan.startup`` and closes it on shutdown (and starts
it lazily on the first request if the server runs no lifespan).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import orjson

from idp.resource.protector import AuthError, ResourceProtector
from idp.resource.verifier import Principal

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _quoted(text: str) -> str:
    return "".join(ch for ch in text if ch not in '"\\' and 0x20 <= ord(ch) < 0x7F)


def error_parts(exc: AuthError, realm: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    challenge = f'Bearer realm="{_quoted(realm)}"'
    body: dict[str, str] = {}
    if exc.error:
        challenge += f', error="{exc.error}"'
        body["error"] = exc.error
        if exc.description:
            challenge += f', error_description="{_quoted(exc.description)}"'
            body["error_description"] = exc.description
    if exc.scope:
        challenge += f', scope="{_quoted(exc.scope)}"'
    if exc.acr_values:
        challenge += f', acr_values="{_quoted(exc.acr_values)}"'  # RFC 9470 §3
    if exc.max_age is not None:
        challenge += f', max_age="{int(exc.max_age)}"'  # RFC 9470 §3
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
    if exc.status in (401, 403):
        headers.append((b"www-authenticate", challenge.encode()))
    if exc.status == 503:
        headers.append((b"retry-after", b"1"))
    return exc.status, headers, orjson.dumps(body)


def bearer_token(scope: Scope) -> str | None:
    """The token from ``Authorization: Bearer``; AuthError for a malformed or misplaced one."""
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
    if scheme.lower() != "bearer":  # RFC 6750 §2.1; scheme names are case-insensitive (RFC 9110 §11.1)
        return None
    token = token.strip()
    if not token or " " in token:
        raise AuthError(400, "invalid_request", "malformed bearer token")
    return token


class BearerAuthMiddleware:
    def __init__(
        self, app: Any, *, protector: ResourceProtector, public_paths: Iterable[str] = (), realm: str = "api"
    ) -> None:
        self.app = app
        self.protector = protector
        self.public_paths = frozenset(public_paths)
        self.realm = realm

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._lifespan_receive(receive), send)
            return
        if scope["type"] not in ("http", "websocket") or scope.get("path") in self.public_paths:
            await self.app(scope, receive, send)
            return
        try:
            token = bearer_token(scope)
            if token is None:  # RFC 6750 §3.1: no error code when no credentials were sent
                raise AuthError(401, None)
            principal = await self.protector.authenticate(token)
        except AuthError as exc:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await self._refuse(send, exc)
            return
        scope.setdefault("state", {})["principal"] = principal
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
        status, headers, body = error_parts(exc, self.realm)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


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
            elif not needed <= principal.scopes:  # RFC 6750 §3.1 insufficient_scope
                exc = AuthError(403, "insufficient_scope", "the token lacks a required scope", " ".join(scopes))
                status, headers, body = error_parts(exc, realm)
            else:
                return await endpoint(*args, **kwargs)
            return Response(body, status, headers={k.decode(): v.decode() for k, v in headers})

        return wrapper

    return decorator
