"""The login round trip's cookie is sealed, bound to the BFF's key, and expires."""

from __future__ import annotations

import base64
import secrets

from idp.bff.config import load_bff_settings
from idp.bff.cookies import LoginCookie
from idp.bff.sealing import SessionCrypto
from idp.crypto import b64url, b64url_decode

KEY = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
SETTINGS = load_bff_settings(issuer="https://idp.example", origin="https://app.example", encryption_key=KEY)


def test_round_trip_and_expiry() -> None:
    cookie = LoginCookie(SessionCrypto(SETTINGS.key()).login_key, SETTINGS)
    body = {"session": {"_state_idp_abc": {"data": {"code_verifier": "VERIFIER-SECRET"}}}, "return_to": "/x"}
    sealed = cookie.seal(body, 1000.0)
    assert "VERIFIER-SECRET" not in sealed and "VERIFIER-SECRET" not in b64url_decode(sealed).decode("latin-1")
    assert cookie.open(sealed, 1000.0 + SETTINGS.login_ttl - 1) == body
    assert cookie.open(sealed, 1000.0 + SETTINGS.login_ttl) is None


def test_forged_or_foreign_cookie_is_refused() -> None:
    cookie = LoginCookie(SessionCrypto(SETTINGS.key()).login_key, SETTINGS)
    other = LoginCookie(SessionCrypto(secrets.token_bytes(32)).login_key, SETTINGS)
    sealed = cookie.seal({"session": {}}, 1000.0)
    assert other.open(sealed, 1000.0) is None
    raw = bytearray(b64url_decode(sealed))
    raw[-1] ^= 1
    assert cookie.open(b64url(bytes(raw)), 1000.0) is None
    for junk in ("", "!!!", "a" * 5000, b64url(b"short")):
        assert cookie.open(junk, 1000.0) is None
