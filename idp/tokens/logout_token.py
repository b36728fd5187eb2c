"""Logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.4): what the OP POSTs to a client's
``backchannel_logout_uri`` when a session it signed into ends.

Signed like the client's ID tokens (its registered ``id_token_signed_response_alg``, else the default), by
the keyring's active key for that algorithm, with its ``kid``. Each delivery attempt signs a fresh token (new
``jti``, ``iat``, ``exp``): a retry hours later still carries a short-lived token, and a receiver that
remembers ``jti`` values never sees a resend as a replay.
"""

from __future__ import annotations

from typing import Any

from idp.clock import Clock
from idp.crypto import random_id
from idp.keys.keyring import Keyring
from idp.tokens import jwt

TYP = "logout+jwt"  # BCL §2.4 / RFC 8725 §3.11: explicit typing, so it cannot pass as an ID token
EVENT = "http://schemas.openid.net/event/backchannel-logout"
TTL = 120  # seconds: BCL §2.4 recommends a short lifetime (at most two minutes)


class LogoutTokens:
    def __init__(self, keyring: Keyring, clock: Clock, *, issuer: str, default_alg: str, ttl: int = TTL) -> None:
        self._keyring = keyring
        self._clock = clock
        self.issuer = issuer
        self.default_alg = default_alg
        self.ttl = ttl

    def claims(self, *, client_id: str, sid: str | None, sub: str | None) -> dict[str, Any]:
        """The claim set; ValueError without ``sid`` and ``sub`` (BCL §2.4: one of them is REQUIRED)."""
        if not sid and not sub:
            raise ValueError("a logout token names a session (sid) or a subject (sub)")
        now = int(self._clock.now())
        claims: dict[str, Any] = {
            "iss": self.issuer,  # BCL §2.4: REQUIRED
            "aud": client_id,  # BCL §2.4: REQUIRED, the RP's client_id
            "iat": now,  # BCL §2.4: REQUIRED
            "exp": now + self.ttl,  # BCL §2.4: REQUIRED; short
            "jti": random_id(16),  # BCL §2.4: REQUIRED, unique per token
            "events": {EVENT: {}},  # BCL §2.4: REQUIRED, this member with an empty JSON object
        }
        if sub:
            claims["sub"] = sub  # BCL §2.4: OPTIONAL, but sid or sub MUST be present
        if sid:
            claims["sid"] = sid
        # BCL §2.4: a nonce claim is PROHIBITED (it would let an ID token pass as a logout token): none is added
        return claims

    def issue(self, *, client_id: str, sid: str | None, sub: str | None, alg: str | None = None) -> str:
        """A signed logout token; ``alg`` is the client's ID-token algorithm (None: the default)."""
        claims = self.claims(client_id=client_id, sid=sid, sub=sub)
        return jwt.sign(self._keyring, alg or self.default_alg, TYP, claims)  # header: alg, typ, kid
