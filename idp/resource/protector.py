"""Everything a resource server needs to accept or refuse a bearer token, framework-free.

``ResourceProtector.authenticate(token)`` verifies the token locally (``verifier``), then
asks the deny-list copy kept by the ``follower``. The follower reads the IdP's feed as the
resource server's own client (``client``: ``(client_id, client_secret)``, or a
:class:`idp.resource.credentials.PrivateKeyJwt`), registered with the scope
``deny-list:read``. While the follower has been silent longer than ``stale_after``, the
copy may be missing revocations, and ``on_stale`` says what to do:

* ``"fail_closed"`` (default): refuse with ``stale_status`` (401 ``invalid_token`` or
  503 ``temporarily_unavailable``);
* ``"introspect"``: ask the IdP's RFC 7662 endpoint about each token (cached for
  ``introspection_cache`` seconds), authenticating as ``introspection_client`` (by default
  ``client``); if the IdP cannot answer either, refuse with 503.

Endpoints default to the issuer's: ``/jwks.json``, ``/deny-list/events``, ``/introspect``;
``base_url`` reaches them by another address (in-cluster).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Literal

import httpx

from idp.clock import Clock
from idp.resource.credentials import ClientCredentials, as_credentials
from idp.resource.follower import DenyListFollower
from idp.resource.jwks import JwksCache
from idp.resource.verifier import AccessTokenVerifier, Principal
from idp.tokens.jwt import LEEWAY, TokenInvalid


class AuthError(Exception):
    """Refusal in RFC 6750 §3 terms; ``description`` is safe to send."""

    def __init__(
        self,
        status: int,
        error: str | None,
        description: str = "",
        scope: str | None = None,
        *,
        acr_values: str | None = None,
        max_age: int | None = None,
    ) -> None:
        super().__init__(description or error or "unauthorized")
        self.status = status
        self.error = error
        self.description = description
        self.scope = scope
        self.acr_values = acr_values  # RFC 9470 §3: what the client should ask the authorization server for
        self.max_age = max_age


class Introspector:
    """RFC 7662 client with a small positive/negative cache keyed by the token's hash."""

    def __init__(
        self,
        url: str,
        credentials: ClientCredentials | tuple[str, str],
        http: httpx.AsyncClient,
        *,
        cache_seconds: float = 1.0,
        max_entries: int = 10_000,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        found = as_credentials(credentials)
        assert found is not None
        self._credentials = found
        self._http = http
        self._ttl = cache_seconds
        self._max = max_entries
        self._now = now
        self._cache: OrderedDict[bytes, tuple[float, dict[str, Any] | None]] = OrderedDict()
        self.calls = 0

    async def introspect(self, token: str) -> dict[str, Any] | None:
        """The IdP's answer for an active token, None for an inactive one; AuthError(503) if it cannot answer."""
        key = hashlib.sha256(token.encode()).digest()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > self._now():
            return hit[1]
        try:
            self.calls += 1
            options = self._credentials.request_options()
            data = {"token": token, "token_type_hint": "access_token", **options.pop("data", {})}
            resp = await self._http.post(self.url, data=data, **options)
            body = resp.json() if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            body = None
        if not isinstance(body, dict):
            raise AuthError(503, "temporarily_unavailable", "cannot check the token's revocation status")
        answer = body if body.get("active") is True else None
        if self._ttl > 0:
            self._cache[key] = (self._now() + self._ttl, answer)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return answer


class ResourceProtector:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str | Iterable[str],
        base_url: str | None = None,
        http: httpx.AsyncClient | None = None,
        client: ClientCredentials | tuple[str, str] | None = None,
        follow: bool = True,
        stale_after: float = 25.0,
        on_stale: Literal["fail_closed", "introspect"] = "fail_closed",
        stale_status: Literal[401, 503] = 401,
        introspection_client: ClientCredentials | tuple[str, str] | None = None,
        introspection_cache: float = 1.0,
        clock: Clock | None = None,
        leeway: int = LEEWAY,
        jwks_refetch_interval: float = 10.0,
        reconnect_max: float = 5.0,
    ) -> None:
        if on_stale not in ("fail_closed", "introspect") or stale_status not in (401, 503):
            raise ValueError("on_stale must be fail_closed|introspect and stale_status 401|503")
        credentials = as_credentials(client)
        introspection = as_credentials(introspection_client) or credentials
        if follow and credentials is None:
            raise ValueError("following the deny-list needs client=(client_id, client_secret) of a client "
                             "registered with the deny-list:read scope")  # fmt: skip
        if on_stale == "introspect" and introspection is None:
            raise ValueError("on_stale='introspect' needs client= or introspection_client=")
        base = (base_url or issuer).rstrip("/")
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(timeout=httpx.Timeout(5.0))
        self.jwks = JwksCache(f"{base}/jwks.json", self.http, refetch_interval=jwks_refetch_interval)
        self.verifier = AccessTokenVerifier(issuer=issuer, audience=audience, jwks=self.jwks, clock=clock,
                                            leeway=leeway)  # fmt: skip
        self.follower: DenyListFollower | None = None
        if follow:
            assert credentials is not None
            self.follower = DenyListFollower(
                issuer=issuer, http=self.http, jwks=self.jwks, credentials=credentials, base_url=base,
                stale_after=stale_after, clock=clock, reconnect_max=reconnect_max,
            )  # fmt: skip
        self.on_stale = on_stale
        self.stale_status = stale_status
        self.introspector = (
            Introspector(f"{base}/introspect", introspection, self.http, cache_seconds=introspection_cache)
            if introspection is not None and on_stale == "introspect"
            else None
        )
        self._started = False
        self._start_lock = asyncio.Lock()

    async def start(self, wait: float = 5.0) -> None:
        """Fetch the JWKS and start following the deny-list (waits up to ``wait`` s for the first copy)."""
        async with self._start_lock:
            if self._started:
                return
            self._started = True
            await self.jwks.refresh()
            if self.follower is not None:
                await self.follower.start(wait)

    async def aclose(self) -> None:
        if self.follower is not None:
            await self.follower.aclose()
        if self._own_http:
            await self.http.aclose()
        self._started = False

    async def authenticate(self, token: str) -> Principal:
        if not self._started:
            await self.start()
        try:
            header, claims = await self.verifier.verify(token)
        except TokenInvalid as exc:
            raise AuthError(401, "invalid_token", str(exc)) from None
        follower = self.follower
        if follower is None:
            return Principal.from_claims(claims)
        if follower.is_denied(claims, header["kid"]):
            raise AuthError(401, "invalid_token", "token revoked")
        if follower.is_stale():
            if self.introspector is None or self.on_stale == "fail_closed":
                if self.stale_status == 503:
                    raise AuthError(503, "temporarily_unavailable", "revocation status unknown; retry shortly")
                raise AuthError(401, "invalid_token", "revocation status unknown")
            if await self.introspector.introspect(token) is None:
                raise AuthError(401, "invalid_token", "token is not active")
        return Principal.from_claims(claims)
