"""Local verification of our JWT access tokens (RFC 9068) at a resource server.

The same RFC 8725 rules as the IdP's own ``idp.tokens.jwt.verify``, with keys from the
cached JWKS instead of the keyring: ``kid`` required and known; the key's pinned
``alg`` only (no ``none``, no HS*); ``jku``/``x5u``/``jwk``/``x5c``/``crit`` refused;
``typ`` must be ``at+jwt`` (an ID token or a logout token is not an access token);
``iss``, ``aud``, ``exp``, ``nbf``, ``iat`` with a small leeway; the RFC 9068 §2.2 claims
present.

A verified token is remembered (``cache_size`` entries, 10,000 by default): every request of
a client carries the same token for its whole lifetime, and its signature is the one
expensive step, tens of times a hit's cost (bench/RESULTS.md). A hit is the exact token
string, so nothing tampered matches one; it is re-checked each time for ``exp`` and for
its key still being the one the JWKS names for its ``kid`` (a key evicted as compromised
or gone from the set takes its tokens with it); the deny-list is consulted on every
request by the caller (:mod:`idp.resource.protector`), hit or not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from idp.clock import Clock, SystemClock
from idp.resource.jwks import AnyKey, JwksCache
from idp.tokens.jwt import FORBIDDEN_HEADERS, LEEWAY, TokenInvalid, check_claims, peek_header, verified_claims

AT_TYPES = frozenset({"at+jwt", "application/at+jwt"})  # RFC 9068 §2.1
AT_CLAIMS = ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")  # RFC 9068 §2.2

__all__ = ["AccessTokenVerifier", "Principal", "TokenInvalid"]


@dataclass(frozen=True)
class Principal:
    """Who is calling: handed to the handler by the middleware."""

    sub: str
    client_id: str
    scopes: frozenset[str]
    claims: dict[str, Any] = field(repr=False, compare=False)
    jkt: str | None = None  # the key a DPoP-bound token is bound to (its proof checked), None for a bearer token

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> Principal:
        scope = claims.get("scope", "")
        cnf = claims.get("cnf")
        jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
        return cls(
            sub=str(claims.get("sub", "")),
            client_id=str(claims.get("client_id", "")),
            scopes=frozenset(scope.split()) if isinstance(scope, str) else frozenset(),
            claims=claims,
            jkt=jkt if isinstance(jkt, str) else None,
        )


def decode_with(token: str, header: dict[str, Any], found: tuple[str, AnyKey] | None) -> dict[str, Any]:
    """Check the signature with the key the ``kid`` named; return the claims (no claim checks)."""
    if found is None:
        raise TokenInvalid("unknown or revoked signing key")
    alg, key = found
    if header.get("alg") != alg:  # RFC 8725 §3.1: the key's pinned algorithm, never the token's choice
        raise TokenInvalid("algorithm does not match the signing key")
    return verified_claims(token, alg, key)


def checked_header(token: str, types: Iterable[str]) -> tuple[dict[str, Any], str]:
    header = peek_header(token)
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:  # RFC 8725 §3.1 / ASVS V9.1.1: verify with the key kid names
        raise TokenInvalid("token has no kid")
    if FORBIDDEN_HEADERS & header.keys():  # RFC 8725 §3.10 / ASVS V9.1.3: no key material from the token
        raise TokenInvalid("token header carries a forbidden parameter")
    if str(header.get("typ", "")).lower() not in types:  # RFC 8725 §3.11 / RFC 9068 §4: explicit typing
        raise TokenInvalid("unexpected token type")
    return header, kid


class AccessTokenVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str | Iterable[str],
        jwks: JwksCache,
        clock: Clock | None = None,
        leeway: int = LEEWAY,
        cache_size: int = 10_000,
    ) -> None:
        self.issuer = issuer
        self.audience = audience if isinstance(audience, str) else tuple(audience)
        self.jwks = jwks
        self.clock = clock or SystemClock()
        self.leeway = leeway
        self.cache_size = cache_size
        self._verified: dict[str, tuple[dict[str, Any], dict[str, Any], AnyKey]] = {}

    async def verify(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(header, claims) of a valid access token, else TokenInvalid (message safe to show)."""
        hit = self._verified.get(token)
        if hit is not None:
            return self._recheck(token, hit, await self.jwks.get(hit[0]["kid"]))
        header, kid = checked_header(token, AT_TYPES)
        return self._verify(token, header, await self.jwks.get(kid))

    def verify_cached(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Like :meth:`verify` with no I/O: an unknown kid is simply invalid (benchmarks, sync code)."""
        hit = self._verified.get(token)
        if hit is not None:
            return self._recheck(token, hit, self.jwks.cached(hit[0]["kid"]))
        header, kid = checked_header(token, AT_TYPES)
        return self._verify(token, header, self.jwks.cached(kid))

    def _verify(
        self, token: str, header: dict[str, Any], found: tuple[str, AnyKey] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        claims = decode_with(token, header, found)
        self.check(claims)
        if self.cache_size > 0 and found is not None:  # always found here: decode_with refused a missing key
            if len(self._verified) >= self.cache_size:
                with contextlib.suppress(StopIteration, KeyError, RuntimeError):  # another thread got there first
                    self._verified.pop(next(iter(self._verified)))  # the oldest entry
            self._verified[token] = (header, claims, found[1])
        return header, dict(claims)

    def _recheck(
        self, token: str, hit: tuple[dict[str, Any], dict[str, Any], AnyKey], found: tuple[str, AnyKey] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A remembered token: still unexpired, and its kid still names the key that verified it."""
        header, claims, key = hit
        if found is None or found[1] is not key or claims["exp"] <= self.clock.now() - self.leeway:
            self._verified.pop(token, None)
            return self._verify(token, header, found)  # the full checks again, with their own message
        return header, dict(claims)  # a copy: a handler that edits its claims edits no other request's

    def check(self, claims: dict[str, Any]) -> None:
        # RFC 9068 §4 / RFC 8725 §3.8-3.9: iss, aud, exp, nbf, iat with a small leeway.
        check_claims(
            claims,
            issuer=self.issuer,
            audience=self.audience,
            now=self.clock.now(),
            leeway=self.leeway,
            require=AT_CLAIMS,
        )
