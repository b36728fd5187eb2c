"""Anti-CSRF for the BFF: a custom request header, the Origin, and Fetch Metadata.

The session cookie is ``SameSite`` and ``__Host-``, yet that alone is not enough: *same-site* is not
*same-origin* (a sibling subdomain, or any page on the registrable domain, is same-site and its requests
carry the cookie); ``Lax`` still sends the cookie on top-level GET navigations; and not every browser in
use enforces SameSite. So every proxied call and every state-changing BFF call must also:

* carry ``X-CSRF: 1`` (name configurable). A page may only add a custom header to a cross-origin request
  after a CORS preflight, which the BFF never grants; forms, links, ``<img>`` and ``<script>`` cannot add
  headers at all. A request that has the header therefore came from script on an origin the BFF allows;
* when the browser sends ``Origin``, match the BFF's public origin exactly (scheme, host, port); a caller
  that knows the request is a POST from script (``/bff/logout``) requires it (browsers send ``Origin``
  on every POST);
* when the browser sends ``Sec-Fetch-Site``, say ``same-origin``.

A refusal is a 403 JSON body ``{"error": "csrf_failed", ...}``. The proxy and ``POST /bff/logout`` use
the same :class:`CsrfGuard` (``Bff.csrf``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from idp.bff.errors import json_error

DEFAULT_HEADER = "X-CSRF"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def canonical_origin(value: str) -> str | None:
    """``scheme://host[:port]`` lower-cased, the default port dropped; None for anything else (paths,
    userinfo, ``null``)."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    default = 443 if parts.scheme == "https" else 80
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + ("" if port in (None, default) else f":{port}")


class CsrfGuard:
    """Checks a request's headers. ``public_origin`` is the origin the SPA and the BFF are served from."""

    def __init__(self, public_origin: str, *, header: str = DEFAULT_HEADER, value: str = "1") -> None:
        origin = canonical_origin(public_origin)
        if origin is None:
            raise ValueError(f"not an origin: {public_origin!r}")
        self.origin = origin
        self.header = header
        self.value = value

    def problem(self, headers: Headers, *, require_origin: bool = False) -> str | None:
        """Why the request is refused, or None when it passes."""
        if headers.get(self.header) != self.value:
            return f"the {self.header} header is missing"
        origin = headers.get("origin")
        if origin is None and require_origin:
            return "the request names no Origin"
        if origin is not None and canonical_origin(origin) != self.origin:
            return "the request comes from another origin"
        site = headers.get("sec-fetch-site")
        if site is not None and site.strip().lower() != "same-origin":
            return "the request is not same-origin"
        return None

    def reject(self, request: Request, *, require_origin: bool = False) -> Response | None:
        """A 403 response when ``request`` fails the check, else None: ``if (r := guard.reject(request)): return r``."""
        problem = self.problem(request.headers, require_origin=require_origin)
        return None if problem is None else json_error(403, "csrf_failed", problem)

    def protect(self, endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a Starlette endpoint so it runs only for requests that pass."""

        async def guarded(request: Request) -> Response:
            refused = self.reject(request)
            return refused if refused is not None else await endpoint(request)

        guarded.__name__ = getattr(endpoint, "__name__", "guarded")
        guarded.__doc__ = endpoint.__doc__
        return guarded


class CsrfMiddleware:
    """Pure ASGI: applies ``guard`` to HTTP requests under ``prefixes`` (segment-aligned). With
    ``all_methods=False`` only unsafe methods are checked (for routes that render to the top-level
    navigation, e.g. ``/bff/login``); the proxy checks every method itself."""

    def __init__(self, app: ASGIApp, guard: CsrfGuard, prefixes: Iterable[str], *, all_methods: bool = True) -> None:
        self.app = app
        self.guard = guard
        self.prefixes = tuple(p.rstrip("/") for p in prefixes)
        self.all_methods = all_methods

    def _covers(self, scope: Scope) -> bool:
        path: str = scope.get("path", "")
        if not any(path == p or path.startswith(p + "/") for p in self.prefixes):
            return False
        return self.all_methods or scope.get("method", "GET") not in SAFE_METHODS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._covers(scope):
            problem = self.guard.problem(Headers(scope=scope))
            if problem is not None:
                await json_error(403, "csrf_failed", problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)
