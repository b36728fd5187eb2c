"""OpenID Connect ID tokens (OIDC Core §2): issue, and verify our own (``id_token_hint`` at logout).

RS256 by default (OIDC Core §15.1 requires OPs to support it and conformance
suites expect it when the client registered nothing); a client may pick ES256 or
EdDSA. The header ``typ`` is ``JWT`` so an ID token can never pass as an access
token (``at+jwt``, RFC 8725 §3.11).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from idp.clock import Clock
from idp.crypto import b64url
from idp.keys.keyring import Keyring
from idp.tokens import jwt

TYP = "JWT"
REQUIRED = ("iss", "sub", "aud", "exp", "iat")


def half_hash(value: str, alg: str) -> str:
    """``at_hash``/``c_hash`` (OIDC Core §3.1.3.6): left half of the hash matching the signing algorithm."""
    digest = hashlib.sha512 if alg == "EdDSA" else hashlib.sha256  # Ed25519 -> SHA-512 (OIDC errata)
    raw = digest(value.encode("ascii")).digest()
    return b64url(raw[: len(raw) // 2])


class IdTokens:
    def __init__(self, keyring: Keyring, clock: Clock, *, issuer: str, ttl: int, default_alg: str) -> None:
        self._keyring = keyring
        self._clock = clock
        self.issuer = issuer
        self.ttl = ttl
        self.default_alg = default_alg

    def issue(
        self,
        *,
        client_id: str,
        sub: str,
        auth_time: float | None,
        alg: str | None = None,
        nonce: str | None = None,
        sid: str | None = None,
        acr: str | None = None,
        amr: Iterable[str] = (),
        access_token: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        alg = alg or self.default_alg
        now = int(self._clock.now())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": client_id,
            "exp": now + self.ttl,
            "iat": now,
        }
        if auth_time is not None:
            claims["auth_time"] = int(auth_time)  # OIDC Core §2: REQUIRED with max_age; always sent here
        if nonce:
            claims["nonce"] = nonce  # OIDC Core §3.1.3.7: echoed unmodified
        if sid:
            claims["sid"] = sid
        if acr:
            claims["acr"] = acr
        amr = list(amr)
        if amr:
            claims["amr"] = amr
        if access_token:
            claims["at_hash"] = half_hash(access_token, alg)
        if extra:
            claims.update({k: v for k, v in extra.items() if k not in claims})
        return jwt.sign(self._keyring, alg, TYP, claims)

    def verify(self, token: str, *, client_id: str | None, allow_expired: bool = False) -> dict[str, Any]:
        """Claims of an ID token we issued (signature, issuer; audience when ``client_id`` is given)."""
        _, claims = jwt.verify(
            self._keyring,
            token,
            typ=TYP,
            issuer=self.issuer,
            audience=client_id,
            now=self._clock.now(),
            require=REQUIRED,
            allow_expired=allow_expired,
        )
        return claims
