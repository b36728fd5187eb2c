"""What the stores write: session ids digested, tokens sealed.

* :meth:`SessionCrypto.store_key`: the record key is HMAC-SHA256 of the cookie's random id, so the table or the
  Redis keyspace, read alone, names no cookie that opens a session.
* :meth:`SessionCrypto.seal_tokens`: access, refresh and ID token are encrypted together with AES-256-GCM, the
  record key as associated data: a ciphertext moved to another row does not open.
* :meth:`SessionCrypto.login_key`: a login record is keyed by HMAC-SHA256 (a key of its own) of the login
  cookie's random id, and its ``flow`` (state, nonce, PKCE verifier) sealed like the tokens.

The keys are derived (HKDF-SHA256, one ``info`` each) from the one configured 32-byte key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from idp.bff.session import BffSession, LoginRecord, TokenSet
from idp.crypto import b64url, b64url_decode, derive_key

SESSION_ID_BYTES = 32  # 256 bits in the cookie (at least 128 are needed)
LOGIN_ID_BYTES = 32  # the login cookie's id, likewise
LOGIN_ID_LENGTH = 43  # characters of its base64url form
LOGIN_AAD = "login:"  # before the record key: a login record's seal never opens as a session's


class SealBroken(Exception):
    """A sealed record does not open under this key (wrong key, or moved to another record)."""


def new_session_id() -> str:
    """The cookie value: a bearer secret the browser holds, never stored."""
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def new_login_id() -> str:
    """The login cookie's value: random, names a server-side record, carries nothing itself."""
    return secrets.token_urlsafe(LOGIN_ID_BYTES)


class SessionCrypto:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the BFF key is 32 bytes")
        self._digest_key = derive_key(key, b"idp-bff/session-id/v1")
        self._aead = AESGCM(derive_key(key, b"idp-bff/tokens/v1"))
        self._login_digest_key = derive_key(key, b"idp-bff/login-id/v1")

    def store_key(self, session_id: str) -> str:
        return hmac.new(self._digest_key, session_id.encode(), hashlib.sha256).hexdigest()

    def login_key(self, login_id: str) -> str:
        """The login record's key: not a session key for the same string (a key of its own)."""
        return hmac.new(self._login_digest_key, login_id.encode(), hashlib.sha256).hexdigest()

    def seal(self, plaintext: bytes, aad: str) -> str:
        nonce = os.urandom(12)
        return b64url(nonce + self._aead.encrypt(nonce, plaintext, aad.encode()))

    def open(self, sealed: str, aad: str) -> bytes:
        try:
            blob = b64url_decode(sealed)
            return self._aead.decrypt(blob[:12], blob[12:], aad.encode())
        except (InvalidTag, ValueError) as exc:
            raise SealBroken("a sealed BFF record does not open") from exc

    def seal_tokens(self, tokens: TokenSet, key: str) -> str:
        body = {
            "at": tokens.access_token,
            "exp": tokens.access_expires_at,
            "rt": tokens.refresh_token,
            "idt": tokens.id_token,
            "scope": tokens.scope,
        }
        return self.seal(json.dumps(body, separators=(",", ":")).encode(), key)

    def open_tokens(self, sealed: str, key: str) -> TokenSet:
        body = json.loads(self.open(sealed, key))
        return TokenSet(body["at"], float(body["exp"]), body["rt"], body["idt"], body.get("scope", ""))


def to_record(crypto: SessionCrypto, session: BffSession) -> dict[str, Any]:
    """The row / hash a store writes: plain metadata, sealed tokens."""
    return {
        "key": session.key,
        "sub": session.sub,
        "sid": session.sid,
        "claims": json.dumps(dict(session.claims), separators=(",", ":")),
        "tokens": crypto.seal_tokens(session.tokens, session.key),
        "created_at": float(session.created_at),
        "expires_at": float(session.expires_at),
        "version": int(session.version),
        "extra": json.dumps(dict(session.extra), separators=(",", ":")),
    }


def to_login_row(crypto: SessionCrypto, record: LoginRecord) -> dict[str, Any]:
    """The row a store writes for a login record: the flow sealed under the record key."""
    flow = json.dumps(dict(record.flow), separators=(",", ":")).encode()
    return {
        "key": record.key,
        "flow": crypto.seal(flow, LOGIN_AAD + record.key),
        "return_to": record.return_to,
        "slot": record.slot,
        "expires_at": float(record.expires_at),
    }


def from_login_row(crypto: SessionCrypto, row: dict[str, Any]) -> LoginRecord:
    key = str(row["key"])
    return LoginRecord(
        key=key,
        flow=json.loads(crypto.open(str(row["flow"]), LOGIN_AAD + key)),
        return_to=str(row["return_to"]),
        slot=str(row["slot"] or ""),
        expires_at=float(row["expires_at"]),
    )


def from_record(crypto: SessionCrypto, record: dict[str, Any]) -> BffSession:
    key = str(record["key"])
    return BffSession(
        key=key,
        sub=str(record["sub"]),
        sid=record["sid"] or None,
        claims=json.loads(record["claims"]),
        tokens=crypto.open_tokens(str(record["tokens"]), key),
        created_at=float(record["created_at"]),
        expires_at=float(record["expires_at"]),
        version=int(record["version"]),
        extra=json.loads(record["extra"] or "{}"),
    )
