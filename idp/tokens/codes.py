"""Authorization codes in the ephemeral store: hashed, short-lived, single use.

A code is 256 random bits. The store keeps only its keyed digest as the key and
what the code is bound to as the value (client, redirect URI, PKCE challenge,
nonce, scope, user, auth_time, login session). Redemption first claims a
"redeemed" marker with ``put_if_absent`` and then ``take``s the record, so of
any number of concurrent redemptions exactly one wins and every other one is
*recognised as a replay* (RFC 6749 §4.1.2): the caller then revokes what the
winner issued (the grant row remembers the code digest durably, and the replay
flag covers a winner that has not committed yet).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol

import orjson

from idp.clock import Clock
from idp.crypto import Digester, random_token

CODE_BYTES = 32  # 256 bits (RFC 6749 §10.10; ASVS asks >= 128)
MARKER_TTL = 900.0  # how long the ephemeral store remembers a redeemed code (SQL remembers for good)


class CodeStore(Protocol):
    """The ephemeral store operations codes need (see :class:`idp.ephemeral.EphemeralStore`)."""

    def put(self, key: str, value: bytes, ttl: float) -> None: ...

    def get(self, key: str) -> bytes | None: ...

    def claim(self, marker: str, key: str, ttl: float) -> tuple[bool, bytes | None]: ...


class CodeInvalid(Exception):
    """Unknown or expired code."""

    def __init__(self, digest: bytes, message: str) -> None:
        super().__init__(message)
        self.digest = digest


class CodeReplayed(CodeInvalid):
    """The code was already redeemed: everything issued from it must be revoked."""


@dataclass
class CodeData:
    client_id: str
    redirect_uri: str
    user_id: str
    scope: str
    auth_time: float
    expires_at: float = 0.0
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    nonce: str | None = None
    sid: str | None = None
    acr: str | None = None
    amr: list[str] = field(default_factory=list)
    resource: str | None = None
    dpop_jkt: str | None = None  # RFC 9449 §10: the key the code is bound to


class AuthorizationCodes:
    def __init__(self, store: CodeStore, digester: Digester, clock: Clock, *, ttl: float) -> None:
        self._store = store
        self._digester = digester
        self._clock = clock
        self.ttl = ttl

    def _keys(self, digest: bytes) -> tuple[str, str, str]:
        h = digest.hex()
        return f"code:{h}", f"code-used:{h}", f"code-replayed:{h}"

    def issue(self, data: CodeData) -> str:
        code = random_token(CODE_BYTES)
        data.expires_at = self._clock.now() + self.ttl  # RFC 6749 §4.1.2: short lifetime (default 60 s)
        key, _, _ = self._keys(self._digester.digest(code))
        # The store TTL only collects garbage; expiry is checked against the clock on redemption.
        self._store.put(key, orjson.dumps(asdict(data)), self.ttl + 5)
        return code

    def digest(self, code: str) -> bytes:
        return self._digester.digest(code)

    def redeem(self, code: str) -> tuple[CodeData, bytes]:
        """Returns (data, digest) once; raises CodeReplayed on every later attempt, CodeInvalid if unknown."""
        digest = self._digester.digest(code)
        key, used, replayed = self._keys(digest)
        first, raw = self._store.claim(used, key, MARKER_TTL)  # atomic: single use, one round trip
        if not first:
            self._store.put(replayed, b"1", MARKER_TTL)  # tell a winner that has not committed yet
            raise CodeReplayed(digest, "authorization code already used")  # RFC 6749 §4.1.2
        if raw is None:
            raise CodeInvalid(digest, "unknown or expired authorization code")
        data = CodeData(**orjson.loads(raw))
        if data.expires_at <= self._clock.now():
            raise CodeInvalid(digest, "authorization code expired")
        return data, digest

    def was_replayed(self, digest: bytes) -> bool:
        """True when a replay of this code arrived while its winner was still issuing."""
        return self._store.get(self._keys(digest)[2]) is not None
