"""A DPoP client for tests: a key pair and proofs signed with joserfc (the reference, not the code under test)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any

import orjson
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey, RSAKey

_GENERATE: dict[str, Any] = {
    "ES256": lambda: ECKey.generate_key("P-256"),
    "RS256": lambda: RSAKey.generate_key(2048),
    "PS256": lambda: RSAKey.generate_key(2048),
    "EdDSA": lambda: OKPKey.generate_key("Ed25519"),
    "Ed25519": lambda: OKPKey.generate_key("Ed25519"),
}
_PUBLIC = {"EC": ("kty", "crv", "x", "y"), "RSA": ("kty", "n", "e"), "OKP": ("kty", "crv", "x")}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ath(token: str) -> str:
    return b64(hashlib.sha256(token.encode()).digest())


class DPoPKey:
    """One client key; ``proof()`` makes a DPoP proof JWT for a request."""

    def __init__(self, alg: str = "ES256") -> None:
        self.alg = alg
        self.key = _GENERATE[alg]()
        full = self.key.as_dict(private=False)
        self.jwk: dict[str, Any] = {name: full[name] for name in _PUBLIC[full["kty"]]}
        self.private_jwk: dict[str, Any] = self.key.as_dict(private=True)
        self.jkt = self.key.thumbprint()  # joserfc's RFC 7638 thumbprint, SHA-256

    def proof(
        self,
        htm: str,
        htu: str,
        *,
        iat: float | None = None,
        jti: str | None = None,
        nonce: str | None = None,
        access_token: str | None = None,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
    ) -> str:
        protected: dict[str, Any] = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.jwk, **(header or {})}
        payload: dict[str, Any] = {
            "jti": jti or secrets.token_urlsafe(16),
            "htm": htm,
            "htu": htu,
            "iat": int(time.time() if iat is None else iat),
        }
        if nonce is not None:
            payload["nonce"] = nonce
        if access_token is not None:
            payload["ath"] = ath(access_token)
        payload.update(claims or {})
        for name in drop:
            payload.pop(name, None)
            protected.pop(name, None)
        return jws.serialize_compact(protected, orjson.dumps(payload), self.key, algorithms=[self.alg])


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A compact JWS with any header (``alg: none``, HS256 …) and the given signature bytes."""
    return ".".join((b64(orjson.dumps(header)), b64(orjson.dumps(claims)), b64(signature)))
