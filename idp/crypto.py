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
import binascii
import hashlib
import hmac
import os
import re
import secrets
import threading

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class KeyError_(Exception):
    """The KEK is malformed or does not open what it should (wrong or foreign key)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TO_STD = str.maketrans("-_", "+/")
# The bits of the last character that carry no data: 4 when 2 characters are left over, 2 when 3 are.
_UNUSED_BITS = {2: 0x0F, 3: 0x03}


def b64url_decode(text: str) -> bytes:
    """RFC 7515 §2 base64url: unpadded, URL alphabet only, and the one canonical encoding of its bytes.

    Raises ValueError otherwise. The stdlib decoders skip stray characters and ignore the unused
    low bits of the last character, so ``...Zw`` and ``...Z-`` would decode alike; here the second is
    refused (RFC 4648 §3.5), as joserfc refuses it.
    """
    rest = len(text) % 4
    if rest == 1 or not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    if rest and _B64URL_ALPHABET.index(text[-1]) & _UNUSED_BITS[rest]:  # RFC 4648 §3.5: pad bits are zero
        raise ValueError("not canonical base64url")
    return binascii.a2b_base64(text.translate(_TO_STD) + "=" * (-rest % 4), strict_mode=True)


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


class RandomPool:
    """Bytes from ``os.urandom`` read 4 KiB at a time and handed out in slices.

    For identifiers made on every request (the request id, the access token ``jti``): one
    ``getrandom`` syscall per ~250 of them instead of one each. Still the kernel CSPRNG's
    output, each byte handed out once (under a lock: threads never share a slice); a forked
    child drops the parent's bytes (``os.register_at_fork``) so the two never hand out the same.
    Bearer secrets (refresh tokens, codes, client secrets) keep using :mod:`secrets` directly.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._buf = b""
        self._pos = 0

    def take(self, n: int) -> bytes:
        if n > self._size:
            return os.urandom(n)
        with self._lock:
            pos = self._pos
            if pos + n > len(self._buf):
                self._buf, pos = os.urandom(self._size), 0
            self._pos = pos + n
            return self._buf[pos : pos + n]

    def forget(self) -> None:
        """In a forked child: drop the parent's bytes (and its lock, which another thread may have held)."""
        self._lock = threading.Lock()
        self._buf, self._pos = b"", 0


_pool = RandomPool()
os.register_at_fork(after_in_child=_pool.forget)


def random_hex(nbytes: int) -> str:
    """A hex identifier with ``8 * nbytes`` random bits, from the pool (not for bearer secrets)."""
    return _pool.take(nbytes).hex()


def random_urlsafe(nbytes: int) -> str:
    """A URL-safe identifier with ``8 * nbytes`` random bits, from the pool (not for bearer secrets)."""
    return b64url(_pool.take(nbytes))


def _derive(kek: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(kek)


def derive_key(kek: bytes, purpose: bytes) -> bytes:
    """A 32-byte key for one ``purpose`` (HKDF-SHA256 info), the same in every process holding the KEK."""
    return _derive(kek, purpose)


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
