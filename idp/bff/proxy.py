"""The BFF's API proxy: ``/<prefix>/<rest>`` on the BFF becomes ``<upstream.url>/<rest>`` upstream, with the
session's token as ``Authorization: Bearer``, bodies streamed both ways (a response with a small
``Content-Length`` is read whole and sent in one piece).

What crosses, and what does not:

* The prefix is stripped: ``Upstream(prefix="/api/orders", url="https://orders.internal/v1")`` sends
  ``/api/orders/42?x=1`` to ``https://orders.internal/v1/42?x=1``. To keep the prefix, put it in the URL.
* The path is forwarded as the browser encoded it, after a check: no segment may decode (once or more)
  to ``.`` or ``..`` or contain an encoded ``/`` or ``\\``, so nothing escapes the upstream's base path
  (``/api/../bff/user``, ``/api/%2e%2e/x``, ``/api/a%2Fb``: 400 ``invalid_path``).
* Request: the browser's ``Cookie`` and ``Authorization`` go nowhere; hop-by-hop headers (RFC 9110
  §7.6.1: ``Connection`` and every header it names, ``Keep-Alive``, ``Proxy-*``, ``TE``, ``Trailer``,
  ``Transfer-Encoding``, ``Upgrade``) and ``Expect`` are dropped; the CSRF header and any
  ``Forwarded``/``X-Forwarded-*`` the browser sent are replaced by the BFF's own ``X-Forwarded-For``
  (the peer address; run the server with proxy-headers behind a load balancer), ``-Proto`` and ``-Host``.
* Response: status, body and headers pass through, except hop-by-hop headers, ``Set-Cookie`` (an
  upstream must not plant cookies on the BFF's origin, where the session cookie lives), ``Alt-Svc``
  (it would advertise the upstream's endpoints for the BFF's origin), and ``Server`` and ``Date`` (the
  server in front of the BFF sends its own: one of each, RFC 9110 §6.6.1 and §10.2.4); an answer without
  ``Cache-Control`` gets ``private``. Tokens never go back to the browser.
* Errors are JSON ``{"error", "error_description"}``: 401 ``session_required`` (no session) or
  ``session_ended`` (sign in again; the session is deleted and the answer clears its cookie), 403
  ``csrf_failed``, 400 ``invalid_path``, 502 ``upstream_unavailable`` (cannot connect), 504
  ``upstream_timeout``, 503 ``idp_unavailable``, 502 ``exchange_failed``.

Every method, GET included, needs the CSRF check: a proxied GET carries the user's bearer token, APIs do
not all keep GET free of effects, and a cross-site ``<script src>`` or top-level navigation is exactly
the request the custom header rules out. WebSocket upgrades are not proxied.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

import httpx
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from idp.bff.config import Upstream
from idp.bff.context import Bff
from idp.bff.cookies import clear_session_cookie
from idp.bff.csrf import CsrfGuard
from idp.bff.errors import json_error
from idp.bff.exchange import SubjectRefused, TokenExchanger
from idp.bff.paths import unsafe_segments
from idp.bff.refresh import TokenKeeper
from idp.bff.session import BffSession
from idp.bff.token_endpoint import BffError, SessionEnded, TokenEndpoint

log = logging.getLogger(__name__)

# RFC 9110 §7.6.1 and §7.8: meaningful for one connection only, never forwarded.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)
REQUEST_DROPPED = frozenset({"cookie", "authorization", "host", "expect", "forwarded", "x-real-ip", "content-length"})
RESPONSE_DROPPED = frozenset({"set-cookie", "set-cookie2", "alt-svc", "server", "date"})
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass(frozen=True, slots=True)
class ProxyTimeouts:
    """Per upstream call. A connect timeout or a read timeout before the response head answers 504."""

    connect: float = 5.0
    read: float = 30.0
    write: float = 30.0
    pool: float = 5.0

    def as_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


# Resolves the request's session from its cookie: Bff.session_of (idle and absolute expiry included).
SessionResolver = Callable[[Request], Awaitable[BffSession | None]]
# Run on a 401 ``session_ended`` answer: delete the session (if still stored) and clear its cookie on the answer.
SessionEnder = Callable[[BffSession, Response], Awaitable[None]]


class InvalidPath(Exception):
    pass


def upstream_path(request: Request, prefix: str) -> str:
    """The path after ``prefix``, as the browser encoded it ("" or "/..."). Raises :class:`InvalidPath`."""
    scope = request.scope
    raw: bytes = scope.get("raw_path") or quote(scope["path"]).encode()
    path = raw.split(b"?", 1)[0].decode("latin-1")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    if path != prefix and not path.startswith(prefix + "/"):
        raise InvalidPath("the path does not start with the upstream prefix as written")
    rest = path[len(prefix) :]
    if unsafe_segments(rest):
        raise InvalidPath("the path has a dot segment or an encoded separator")
    return rest


# RFC 3986 §3.3/§3.4: what stays as it is; every other byte (spaces, non-ASCII) is percent-encoded once,
# and existing escapes stay (a byte-for-byte forward of what the browser encoded).
PATH_SAFE = "/%!$&'()*+,;=:@"
QUERY_SAFE = PATH_SAFE + "?[]"


def _encoded(raw: bytes, safe: str) -> str:
    return quote(raw, safe=safe)


def _connection_named(headers: Iterable[tuple[bytes, bytes]]) -> set[str]:
    named: set[str] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            named.update(t.strip().lower() for t in value.decode("latin-1").split(",") if t.strip())
    return named


def _hop(name: str, named: set[str]) -> bool:
    return name in HOP_BY_HOP or name.startswith("proxy-") or name in named


def request_headers(request: Request, token: str, csrf_header: str) -> list[tuple[bytes, bytes]]:
    """What goes upstream, as bytes: header values pass as the browser sent them (not re-encoded)."""
    raw = request.headers.raw
    named = _connection_named(raw)
    dropped = REQUEST_DROPPED | {csrf_header.lower()}
    out: list[tuple[bytes, bytes]] = []
    for key, value in raw:
        name = key.decode("latin-1").lower()
        if _hop(name, named) or name in dropped or name.startswith("x-forwarded-"):
            continue
        out.append((name.encode("latin-1"), value))
    if "accept-encoding" not in request.headers:
        out.append((b"accept-encoding", b"identity"))  # else httpx asks for gzip the browser did not
    length = request.headers.get("content-length")
    if length is not None and "transfer-encoding" not in request.headers:
        out.append((b"content-length", length.encode("latin-1")))
    out.append((b"authorization", f"Bearer {token}".encode("ascii")))
    if request.client is not None:
        out.append((b"x-forwarded-for", request.client.host.encode("latin-1")))
    out.append((b"x-forwarded-proto", request.url.scheme.encode("latin-1")))
    if "host" in request.headers:
        out.append((b"x-forwarded-host", request.headers["host"].encode("latin-1")))
    return out


def response_headers(resp: httpx.Response) -> list[tuple[bytes, bytes]]:
    """The upstream's headers minus the dropped ones. Without a ``Cache-Control`` of its own the answer is
    marked ``private``: it was made for one user's cookie, and shared caches do not treat a request's
    ``Cookie`` the way they treat ``Authorization`` (RFC 9111 §3.5)."""
    raw = resp.headers.raw
    named = _connection_named(raw)
    out = [
        (key.lower(), value)
        for key, value in raw
        if not _hop(key.decode("latin-1").lower(), named) and key.decode("latin-1").lower() not in RESPONSE_DROPPED
    ]
    if not any(key == b"cache-control" for key, _ in out):
        out.append((b"cache-control", b"private"))
    return out


def _has_body(request: Request) -> bool:
    return "transfer-encoding" in request.headers or request.headers.get("content-length", "0") not in ("", "0")


async def _request_body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


SMALL_BODY = 64 * 1024  # bytes: an answer with a Content-Length up to this is read whole, then sent


def _small(resp: httpx.Response) -> bool:
    """A body of known, small length: one read and one send cost less than a streamed relay (a task group and
    a send per chunk). Unknown or larger lengths stream, so downloads and slow producers are not buffered."""
    if "transfer-encoding" in resp.headers:
        return False
    length = resp.headers.get("content-length", "")
    return length.isdigit() and int(length) <= SMALL_BODY


async def _relay(resp: httpx.Response) -> AsyncIterator[bytes]:
    """The upstream body as it arrives, still content-encoded (its headers pass through with it)."""
    try:
        async for chunk in resp.aiter_raw():
            yield chunk
    except httpx.HTTPError as exc:  # the head is sent: all that is left is to cut the body short
        log.warning("upstream body cut short: %s", type(exc).__name__)
        raise
    finally:
        await resp.aclose()


class ApiProxy:
    """One upstream's endpoint. See the module docstring for what is forwarded."""

    def __init__(
        self,
        upstream: Upstream,
        *,
        sessions: SessionResolver,
        keeper: TokenKeeper,
        exchanger: TokenExchanger | None,
        http: httpx.AsyncClient,
        csrf: CsrfGuard,
        timeouts: ProxyTimeouts,
        ended: SessionEnder | None = None,
    ) -> None:
        if upstream.mode == "exchange" and exchanger is None:
            raise ValueError(f"upstream {upstream.prefix} exchanges tokens but no exchanger is configured")
        self.upstream = upstream
        self.sessions = sessions
        self.keeper = keeper
        self.exchanger = exchanger
        self.http = http
        self.csrf = csrf
        self.timeouts = timeouts
        self.ended = ended
        self._timeout = timeouts.as_httpx().as_dict()  # once: the same bounds for every call
        self.base = upstream.url.rstrip("/")

    async def handle(self, request: Request) -> Response:
        refused = self.csrf.reject(request)
        if refused is not None:
            return refused
        try:
            rest = upstream_path(request, self.upstream.prefix)
        except InvalidPath as exc:
            return json_error(400, "invalid_path", str(exc))
        session = await self.sessions(request)
        if session is None:
            return json_error(401, "session_required", "sign in first")
        try:
            session = await self.keeper.current(session)
            token = await self._token(session)
        except BffError as exc:
            answer = json_error(exc.status, exc.code, exc.description)
            if isinstance(exc, SessionEnded):
                if self.exchanger is not None:
                    self.exchanger.forget(session.key)
                if self.ended is not None:
                    await self.ended(session, answer)
            return answer
        query = _encoded(request.scope.get("query_string", b""), QUERY_SAFE)
        url = self.base + _encoded(rest.encode("latin-1"), PATH_SAFE) + (f"?{query}" if query else "")
        try:
            # Built here, not with the client's build_request: the client's defaults (its cookie jar, which
            # holds whatever an upstream set for one user, its default headers) must not reach an upstream.
            outgoing = httpx.Request(
                request.method,
                url,
                headers=request_headers(request, token, self.csrf.header),
                content=_request_body(request) if _has_body(request) else None,
                extensions={"timeout": self._timeout},
            )
        except (httpx.InvalidURL, ValueError):
            return json_error(400, "invalid_path", "the path or query cannot be forwarded")
        try:
            resp = await self.http.send(outgoing, stream=True)
        except ClientDisconnect:
            return Response(status_code=400)  # the browser went away mid-upload; nobody reads this
        except httpx.TimeoutException:
            return json_error(504, "upstream_timeout", "the upstream did not answer in time")
        except httpx.HTTPError as exc:
            log.warning("upstream %s unreachable: %s", self.upstream.prefix, type(exc).__name__)
            return json_error(502, "upstream_unavailable", "the upstream cannot be reached")
        if resp.status_code == 401 and self.upstream.mode == "exchange" and self.exchanger is not None:
            self.exchanger.forget(session.key)  # the minted token was refused: mint a new one next time
        headers = response_headers(resp)
        if not _small(resp):
            response: Response = StreamingResponse(
                _relay(resp), status_code=resp.status_code, background=BackgroundTask(resp.aclose)
            )
        else:
            try:
                body = b"".join([chunk async for chunk in resp.aiter_raw()])
            except httpx.TimeoutException:
                return json_error(504, "upstream_timeout", "the upstream did not answer in time")
            except httpx.HTTPError as exc:
                log.warning("upstream %s body cut short: %s", self.upstream.prefix, type(exc).__name__)
                return json_error(502, "upstream_unavailable", "the upstream cannot be reached")
            finally:
                await resp.aclose()
            response = Response(body, status_code=resp.status_code)
        response.raw_headers = headers
        return response

    async def _token(self, session: BffSession) -> str:
        if self.upstream.mode != "exchange":
            return session.tokens.access_token
        assert self.exchanger is not None and self.upstream.audience
        try:
            return await self.exchanger.token_for(session, self.upstream.audience)
        except SubjectRefused:
            # idp no longer takes the session's access token: a refresh settles it (new token, or the
            # grant is gone and the session ends); a second refusal stands.
            renewed = await self.keeper.current(session, force=True)
            return await self.exchanger.token_for(renewed, self.upstream.audience)


def proxy_routes(
    upstreams: Sequence[Upstream],
    *,
    sessions: SessionResolver,
    keeper: TokenKeeper,
    exchanger: TokenExchanger | None,
    http: httpx.AsyncClient,
    csrf: CsrfGuard,
    timeouts: ProxyTimeouts | None = None,
    ended: SessionEnder | None = None,
) -> list[BaseRoute]:
    """Two routes per upstream (``prefix`` and ``prefix/...``), every method. ``ended`` runs on every
    ``session_ended`` answer (the app's deletes the session and clears the cookie)."""
    prefixes = [u.prefix for u in upstreams]
    for p in prefixes:
        if any(q != p and (q.startswith(p + "/")) for q in prefixes) or prefixes.count(p) > 1:
            raise ValueError(f"upstream prefixes overlap: {p!r}")
    routes: list[BaseRoute] = []
    for upstream in upstreams:
        proxy = ApiProxy(
            upstream,
            sessions=sessions,
            keeper=keeper,
            exchanger=exchanger,
            http=http,
            csrf=csrf,
            timeouts=timeouts or ProxyTimeouts(),
            ended=ended,
        )
        name = f"bff_proxy:{upstream.prefix}"
        routes.append(Route(upstream.prefix, proxy.handle, methods=METHODS, name=name))
        routes.append(Route(upstream.prefix + "/{rest:path}", proxy.handle, methods=METHODS, name=name + "/"))
    return routes


async def _discovered_token_endpoint(bff: Bff) -> str:
    metadata = await bff.oidc.metadata()  # checked to name bff's issuer; cached once read
    url = metadata.get("token_endpoint")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise ValueError("idp's discovery document names no token endpoint")
    return url


def routes(bff: Bff) -> list[BaseRoute]:
    """The proxy of one BFF app (``create_bff_app`` calls it once): one TokenEndpoint (idp's, from its
    discovery document, as the BFF's confidential client), one TokenKeeper over the app's store (its lease
    and compare-and-set make one refresh per session across workers), one TokenExchanger, the app's
    CsrfGuard, and ``Bff.session_of`` to find the request's session."""
    if not bff.upstreams:
        return []
    settings = bff.settings
    endpoint = TokenEndpoint(
        lambda: _discovered_token_endpoint(bff), settings.client_id, settings.client_secret, bff.http
    )
    keeper = TokenKeeper(bff.store, endpoint, bff.clock)
    exchanger = TokenExchanger(endpoint, bff.clock, store=bff.store)
    bff.state.update(token_keeper=keeper, token_exchanger=exchanger)

    async def ended(session: BffSession, response: Response) -> None:
        await bff.store.delete(session.key)  # the keeper or exchanger may have already: deleting is idempotent
        clear_session_cookie(response, settings)

    return proxy_routes(
        bff.upstreams,
        sessions=bff.session_of,
        keeper=keeper,
        exchanger=exchanger,
        http=bff.http,
        csrf=bff.csrf,
        ended=ended,
    )
