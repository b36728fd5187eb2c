"""DPoP proofs (RFC 9449 §4.2) for the bench: one client key, a fresh proof per request, made before the measurement.

The client's cost is not measured (a proof per request is the client's work); pools are made right before
each measurement, so every proof's ``iat`` is seconds old when it is sent, inside both servers' windows.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import warnings
from pathlib import Path
from typing import Any

import orjson
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey

warnings.filterwarnings("ignore", "EdDSA is deprecated")  # RFC 9864 naming; DPoP metadata still says EdDSA


def ath(token: str) -> str:
    """base64url(SHA-256(token)): the ``ath`` claim binding a proof to its access token."""
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode("ascii")).digest()).rstrip(b"=").decode()


class ProofMaker:
    def __init__(self, alg: str = "ES256") -> None:
        self.alg = alg
        self.key: Any = ECKey.generate_key("P-256") if alg == "ES256" else OKPKey.generate_key("Ed25519")
        self.jkt = self.key.thumbprint()
        self._header = {"typ": "dpop+jwt", "alg": alg, "jwk": self.key.as_dict(private=False)}

    def proof(self, htm: str, htu: str, access_token: str | None = None, *, iat: int | None = None) -> str:
        claims: dict[str, Any] = {"jti": secrets.token_urlsafe(12), "htm": htm, "htu": htu,
                                  "iat": int(time.time()) if iat is None else iat}  # fmt: skip
        if access_token is not None:
            claims["ath"] = ath(access_token)
        return jws.serialize_compact(self._header, orjson.dumps(claims), self.key, algorithms=[self.alg])

    def pool(self, path: Path, n: int, htm: str, htu: str, access_token: str | None = None) -> Path:
        """``n`` proofs, one a line, for bench/lua/pool.lua's ``pool_header``."""
        path.write_text("".join(self.proof(htm, htu, access_token) + "\n" for _ in range(n)))
        return path
