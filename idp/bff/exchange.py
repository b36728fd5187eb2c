"""Tokens minted for one upstream by RFC 8693 token exchange, cached in process.

An upstream in ``exchange`` mode never sees the session's own access token: the BFF trades it at idp's
token endpoint for one whose ``aud`` is that upstream alone, so a token leaked by one API cannot be
replayed at another. The cache key is (session key, digest of the subject token, audience): a refresh
changes the subject token, so an exchanged token never outlives the one it was minted from, while other
writes to the session (its last-use time) do not cost a new exchange. Entries are used
until ``skew`` before they lapse; the cache is a bounded LRU; concurrent callers for one key share one
exchange.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict

from idp.bff.session import BffSession, SessionStore
from idp.bff.singleflight import SingleFlight
from idp.bff.token_endpoint import BffError, SessionEnded, TokenEndpoint, TokenError, expires_in
from idp.clock import Clock

log = logging.getLogger(__name__)

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"

CacheKey = tuple[str, bytes, str]


class ExchangeFailed(BffError):
    """idp did not mint a token for the upstream; the session stays."""

    status = 502
    code = "exchange_failed"


class SubjectRefused(ExchangeFailed):
    """idp answered ``invalid_request``, which RFC 8693 §2.2.2 prescribes for a subject token it will not
    take (revoked, deny-listed, past a cut-off). The request is well-formed by construction, so the caller
    refreshes the session once and tries again; a second refusal stands as 502."""


class TokenExchanger:
    """``token_for(session, audience)``: a bearer token for ``audience``, exchanged from the session's
    (fresh) access token. Raises :class:`SessionEnded` (and deletes the session) when idp refuses the
    subject token as ``invalid_grant``, :class:`SubjectRefused` for ``invalid_request`` (refresh, retry
    once), :class:`ExchangeFailed` for any other refusal, and :class:`IdpUnavailable` when idp is down."""

    def __init__(
        self,
        endpoint: TokenEndpoint,
        clock: Clock,
        *,
        store: SessionStore | None = None,
        skew: float = 30.0,
        max_entries: int = 10_000,
        default_expires_in: float = 60.0,
    ) -> None:
        if max_entries < 1 or skew < 0:
            raise ValueError("max_entries >= 1 and skew >= 0")
        self.endpoint = endpoint
        self.clock = clock
        self.store = store
        self.skew = skew
        self.max_entries = max_entries
        self.default_expires_in = default_expires_in
        self._cache: OrderedDict[CacheKey, tuple[str, float]] = OrderedDict()
        self._flights: SingleFlight[CacheKey, tuple[str, float]] = SingleFlight(self._remember)

    def __len__(self) -> int:
        return len(self._cache)

    async def token_for(self, session: BffSession, audience: str) -> str:
        subject = hashlib.sha256(session.tokens.access_token.encode()).digest()
        key: CacheKey = (session.key, subject, audience)
        hit = self._cache.get(key)
        if hit is not None:
            if self.clock.now() < hit[1] - self.skew:
                self._cache.move_to_end(key)
                return hit[0]
            del self._cache[key]
        token, _ = await self._flights.run(key, lambda: self._exchange(session, audience))
        return token

    def forget(self, session_key: str) -> None:
        """Drop every cached token of a session (it ended)."""
        for key in [k for k in self._cache if k[0] == session_key]:
            del self._cache[key]

    def _remember(self, key: CacheKey, minted: tuple[str, float]) -> None:
        self._cache[key] = minted
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    async def _exchange(self, session: BffSession, audience: str) -> tuple[str, float]:
        form = {
            "grant_type": GRANT_TYPE,
            "subject_token": session.tokens.access_token,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "audience": audience,
        }
        try:
            body = await self.endpoint.post(form)
        except TokenError as exc:
            if exc.error == "invalid_grant":  # RFC 8693 §2.2.2: the subject token is invalid (revoked, expired)
                self.forget(session.key)
                if self.store is not None:
                    await self.store.delete(session.key)
                raise SessionEnded("idp refused the session's access token") from None
            if exc.error == "invalid_request":  # RFC 8693 §2.2.2: how idp refuses a subject token
                raise SubjectRefused("idp refused the session's access token for this upstream") from None
            log.warning("token exchange for %s refused: %s (HTTP %s)", audience, exc.error, exc.status)
            raise ExchangeFailed(f"idp refused a token for this upstream: {exc.error}") from None
        token = body.get("access_token")
        if not isinstance(token, str) or not token or str(body.get("token_type", "")).lower() != "bearer":
            raise ExchangeFailed("the token exchange answered without a bearer access token")
        issued = body.get("issued_token_type")
        if issued is not None and issued != ACCESS_TOKEN_TYPE:
            raise ExchangeFailed("the token exchange issued something other than an access token")
        return token, self.clock.now() + expires_in(body, self.default_expires_in)
