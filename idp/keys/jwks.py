"""The JWKS document, pre-serialised: bytes and a strong ETag, rebuilt only when the key set changes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson

from idp.keys.keyring import Keyring

PUBLIC_MEMBERS = {"kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"}


@dataclass(frozen=True)
class JwksDocument:
    body: bytes
    etag: str
    version: int


def build_jwks(keyring: Keyring) -> JwksDocument:
    keys = []
    for row in keyring.published():
        jwk = {k: v for k, v in row.public_jwk.items() if k in PUBLIC_MEMBERS}
        jwk.update(kid=row.kid, alg=row.alg, use="sig")
        keys.append(jwk)
    body = orjson.dumps({"keys": keys})
    return JwksDocument(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"', keyring.version)


class JwksCache:
    """Serves the current document; rebuilds when the keyring version moves."""

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring
        self._doc: JwksDocument | None = None

    def current(self) -> JwksDocument:
        self._keyring.refresh()
        doc = self._doc
        if doc is None or doc.version != self._keyring.version:
            doc = self._doc = build_jwks(self._keyring)
        return doc
