"""RFC 9068 JWT access tokens: issue and verify. All signing goes through :mod:`idp.tokens.jwt`.

Claims are kept to what RFC 9068 §2.2 requires plus ``scope`` and, with a user,
``auth_time``/``acr``/``amr``/``sid`` (RFC 9470 §3: what a resource server checks for step-up): the
token rides on every API call (the size budget is tested). Personal data stays out (RFC 9068 §6):
resource servers that need it call userinfo.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from idp.clock import Clock
from idp.crypto import random_urlsafe
from idp.denylist.denyset import issued_at
from idp.keys.keyring import Keyring
from idp.tokens import jwt

TYP = "at+jwt"  # RFC 9068 §2.1: explicit typing, so no other JWT is accepted as an access token
ACCEPTED_TYP = ("at+jwt", "application/at+jwt")
REQUIRED = ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")  # RFC 9068 §2.2
JTI_BYTES = 9  # 72 bits: unique among live tokens (10^9 per lifetime: ~1e-4 collision odds); not a secret


@dataclass(frozen=True)
class IssuedAccessToken:
    token: str
    jti: str
    exp: int
    claims: dict[str, Any]


def new_jti() -> str:
    return random_urlsafe(JTI_BYTES)  # pooled CSPRNG bytes: no syscall per token


def audience_claim(audiences: Iterable[str]) -> str | list[str]:
    """A single audience as a string (smaller), several as an array."""
    auds = list(dict.fromkeys(audiences))
    return auds[0] if len(auds) == 1 else auds


LatestCutoff = Callable[[Mapping[str, Any]], float]
"""The latest deny-list cut-off naming a token's claims (``idp.denylist.service.DenyList.latest_cutoff``)."""


class AccessTokens:
    def __init__(
        self,
        keyring: Keyring,
        clock: Clock,
        *,
        issuer: str,
        ttl: int,
        default_alg: str,
        latest_cutoff: LatestCutoff | None = None,
    ) -> None:
        """``latest_cutoff``: so that ``iat`` is stamped past any deny-list cut-off already made."""
        self._keyring = keyring
        self._clock = clock
        self._latest_cutoff = latest_cutoff
        self.issuer = issuer
        self.ttl = ttl
        self.default_alg = default_alg

    def issue(
        self,
        *,
        client_id: str,
        sub: str,
        audience: Iterable[str],
        scope: str,
        alg: str | None = None,
        auth_time: float | None = None,
        acr: str | None = None,
        amr: Iterable[str] = (),
        sid: str | None = None,
        jkt: str | None = None,
        ttl: int | None = None,
        not_after: int | None = None,
        act: Mapping[str, Any] | None = None,
    ) -> IssuedAccessToken:
        """``jkt``: the thumbprint of the DPoP key the token is bound to (RFC 9449 §6.1), None for a bearer token.
        ``ttl`` replaces the configured lifetime and ``not_after`` caps ``exp`` (an exchanged token never
        outlives its subject token); ``act``: the RFC 8693 §4.1 actor claim."""
        instant = self._clock.now()
        now = int(instant)
        jti = new_jti()
        exp = now + (self.ttl if ttl is None else ttl)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": audience_claim(audience),
            "exp": exp if not_after is None else min(exp, not_after),
            "iat": now,
            "jti": jti,
            "client_id": client_id,
        }
        if scope:
            claims["scope"] = scope
        if auth_time is not None:
            claims["auth_time"] = int(auth_time)
        if acr:
            claims["acr"] = acr
        amr = list(amr)
        if amr:
            claims["amr"] = amr  # RFC 9470 §3: a resource server may require a method
        if sid:
            claims["sid"] = sid
        if jkt is not None:
            claims["cnf"] = {"jkt": jkt}  # RFC 9449 §6.1: the confirmation method names the key
        if act is not None:
            claims["act"] = dict(act)  # RFC 8693 §4.1: who acts for the subject
        if self._latest_cutoff is not None:
            # A cut-off made earlier in this second would deny iat = int(now) (compared exactly, fail
            # closed): the next whole second instead, at most 1 s ahead, within every verifier's leeway.
            claims["iat"] = issued_at(instant, self._latest_cutoff(claims))
        token = jwt.sign(self._keyring, alg or self.default_alg, TYP, claims)
        return IssuedAccessToken(token=token, jti=jti, exp=claims["exp"], claims=claims)

    def verify(self, token: str, *, audience: str | Iterable[str] | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """(header, claims) of a valid access token of ours, or raises :class:`jwt.TokenInvalid`."""
        header, claims = jwt.verify(
            self._keyring,
            token,
            typ=ACCEPTED_TYP,
            issuer=self.issuer,
            audience=audience,
            now=self._clock.now(),
            require=REQUIRED,
        )
        return header, claims
