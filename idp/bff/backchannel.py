"""Receiving OpenID Connect Back-Channel Logout 1.0 logout tokens (§2.6), as idp signs them
(``idp.tokens.logout_token``): JWS with ``typ: logout+jwt`` and a ``kid``, ``iss``, ``aud`` (our client_id),
``iat``, ``exp``, ``jti``, ``events`` with the back-channel logout member, ``sid`` and/or ``sub``, no ``nonce``.

Keys come from idp's JWKS through :class:`idp.resource.jwks.JwksCache` (each key pinned to its ``alg``, an
unknown ``kid`` refetched at most once per interval); the token's own header never picks the algorithm.
A ``jti`` is remembered until the token expires, as a lease in the session store that is never released
(so every worker of a shared store sees it): the same token twice is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError

from idp.bff.session import SessionStore
from idp.clock import Clock
from idp.crypto import b64url_decode
from idp.resource.jwks import JwksCache

TYP = "logout+jwt"
EVENT = "http://schemas.openid.net/event/backchannel-logout"
FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})  # RFC 8725 §3.10: no key from the token
LEEWAY = 60  # seconds of clock skew allowed on iat / exp
MAX_AGE = 600  # seconds: a logout token issued longer ago than this is refused whatever its exp
MAX_TOKEN = 8192


class LogoutTokenInvalid(Exception):
    """The logout token does not verify; the message is safe to answer with (BCL §2.8: 400)."""


@dataclass(frozen=True, slots=True)
class LogoutRequest:
    sid: str | None
    sub: str | None
    jti: str


def _segment_json(segment: str) -> dict[str, Any]:
    try:
        value = json.loads(b64url_decode(segment))
    except (ValueError, UnicodeDecodeError):
        raise LogoutTokenInvalid("malformed logout token") from None
    if not isinstance(value, dict):
        raise LogoutTokenInvalid("malformed logout token")
    return value


class LogoutTokenVerifier:
    def __init__(self, *, issuer: str, client_id: str, jwks: JwksCache, store: SessionStore, clock: Clock) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.jwks = jwks
        self._store = store
        self._clock = clock

    async def verify(self, token: object) -> LogoutRequest:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN:
            raise LogoutTokenInvalid("logout_token is missing")
        parts = token.split(".")
        if len(parts) != 3:
            raise LogoutTokenInvalid("the logout token is not a JWS")
        header = _segment_json(parts[0])
        if header.get("typ") != TYP:  # BCL §2.4 / RFC 8725 §3.11: an ID token is no logout token
            raise LogoutTokenInvalid("not a logout token (typ)")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:  # verified with the key its kid names, or not at all
            raise LogoutTokenInvalid("the logout token has no kid")
        if FORBIDDEN_HEADERS & header.keys():
            raise LogoutTokenInvalid("the logout token's header carries a forbidden parameter")
        found = await self.jwks.get(kid)
        if found is None:
            raise LogoutTokenInvalid("unknown signing key")
        alg, key = found
        if header.get("alg") != alg:  # RFC 8725 §3.1: the key's pinned algorithm, never none, never HS*
            raise LogoutTokenInvalid("algorithm does not match the signing key")
        try:
            compact = jws.deserialize_compact(token, key, algorithms=[alg])
        except (JoseError, ValueError):
            raise LogoutTokenInvalid("the logout token's signature does not verify") from None
        try:
            claims = json.loads(compact.payload)
        except ValueError:
            raise LogoutTokenInvalid("malformed logout token") from None
        if not isinstance(claims, dict):
            raise LogoutTokenInvalid("malformed logout token")
        return await self._check(claims)

    async def _check(self, claims: dict[str, Any]) -> LogoutRequest:
        now = self._clock.now()
        if claims.get("iss") != self.issuer:  # BCL §2.6 step 3 (OIDC Core §3.1.3.7 (2))
            raise LogoutTokenInvalid("wrong issuer")
        aud = claims.get("aud")
        if not (aud == self.client_id or (isinstance(aud, list) and self.client_id in aud)):  # step 3, (3)
            raise LogoutTokenInvalid("not for this client (aud)")
        iat, exp = claims.get("iat"), claims.get("exp")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (iat, exp)):
            raise LogoutTokenInvalid("iat and exp are required")
        assert isinstance(iat, int | float) and isinstance(exp, int | float)
        if exp <= now - LEEWAY:  # BCL §2.6 step 3: expired
            raise LogoutTokenInvalid("the logout token has expired")
        if iat > now + LEEWAY or iat < now - MAX_AGE:  # step 3: iat within an acceptable range
            raise LogoutTokenInvalid("the logout token's iat is out of range")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:  # BCL §2.4: REQUIRED
            raise LogoutTokenInvalid("the logout token has no jti")
        sid, sub = claims.get("sid"), claims.get("sub")
        if not isinstance(sid, str | None) or not isinstance(sub, str | None):
            raise LogoutTokenInvalid("sid and sub are strings")
        if not sid and not sub:  # BCL §2.6 step 4: sid, sub, or both
            raise LogoutTokenInvalid("the logout token names no session and no subject")
        events = claims.get("events")
        if not isinstance(events, dict) or not isinstance(events.get(EVENT), dict):  # step 5
            raise LogoutTokenInvalid("the logout token has no back-channel logout event")
        if "nonce" in claims:  # BCL §2.6 step 6: a nonce is prohibited
            raise LogoutTokenInvalid("a logout token must not contain a nonce")
        ttl = max(float(exp), now) + LEEWAY - now
        marker = "bcl-jti:" + hashlib.sha256(jti.encode()).hexdigest()  # bounded, whatever the jti's length
        if not await self._store.lease(marker, "seen", ttl):  # step 7: not a replay
            raise LogoutTokenInvalid("the logout token was already used")
        return LogoutRequest(sid=sid or None, sub=sub or None, jti=jti)


async def end_sessions(store: SessionStore, request: LogoutRequest) -> int:
    """BCL §2.7: end the sessions the token names; a ``sid`` names one idp session, ``sub`` alone all of
    the person's."""
    if request.sid:
        return await store.delete_by_sid(request.sid)
    assert request.sub is not None
    return await store.delete_by_sub(request.sub)
