"""Symmetric primitives derived from the key-encryption key (KEK).

* :class:`Digester`: HMAC-SHA256 of bearer secrets (refresh tokens, codes, client
  secrets, session ids). They carry >= 128 random bits, so a fast keyed hash is
  enough; a slow KDF would only cap throughput. The key makes a stolen table
  useless without the KEK.
* :class:`Sealer`: AES-256-GCM for what must be recovered (private keys, the
  refresh grace successor), with associated data binding each ciphertext to its row.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class KeyError_(Exception):
    """The KEK is malformed or does not open what it should (wrong or foreign key)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def random_token(nbytes: int = 32) -> str:
    """A URL-safe bearer secret with ``8 * nbytes`` bits of entropy."""
    return secrets.token_urlsafe(nbytes)


def random_id(nbytes: int = 16) -> str:
    """A URL-safe identifier (client_id, kid, sub, sid) that never starts with "-",
    so it can be passed to the CLI as a positional argument."""
    while True:
        value = secrets.token_urlsafe(nbytes)
        if not value.startswith("-"):
            return value


def _derive(kek: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(kek)


class Digester:
    def __init__(self, kek: bytes) -> None:
        self._key = _derive(kek, b"idp/digest/v1")

    def digest(self, secret: str) -> bytes:
        return hmac.new(self._key, secret.encode(), hashlib.sha256).digest()

    def matches(self, secret: str, expected: bytes | None) -> bool:
        """Constant-time comparison against a stored digest."""
        return expected is not None and hmac.compare_digest(self.digest(secret), expected)


class Sealer:
    def __init__(self, kek: bytes) -> None:
        self._aead = AESGCM(_derive(kek, b"idp/seal/v1"))

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(blob[:12], blob[12:], aad)
        except Exception as exc:  # InvalidTag, short input
            raise KeyError_("cannot decrypt: wrong key-encryption key or corrupt data") from exc
