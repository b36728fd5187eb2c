"""The BFF's two cookies.

* The session cookie (``__Host-bff``): the random session id, HttpOnly, Secure, Path=/, no Domain, SameSite
  Lax or Strict, Max-Age the session's remaining absolute lifetime. The store keys the session by its digest.
* The login cookie (``__Host-bff-login``): Authlib's state for one sign-in round trip (state, nonce, PKCE
  verifier, where to go afterwards), sealed with AES-256-GCM under a key of its own and stamped with an
  expiry. It is a cookie rather than a server-side record so that an anonymous ``GET /bff/login`` buys no
  storage; it is encrypted (not merely signed) because the PKCE verifier is a secret; it is cleared by the
  callback, and everything it holds is single-use at idp anyway (the code, the nonce). SameSite=Lax: the
  callback is a top-level navigation back from idp, which Strict would strip.
"""

from __future__ import annotations

import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from starlette.requests import Request
from starlette.responses import Response

from idp.bff.config import BffSettings
from idp.crypto import b64url, b64url_decode

_LOGIN_AAD = b"idp-bff/login-cookie/v1"
MAX_COOKIE = 3800  # bytes: browsers keep at least 4096 per cookie, name and attributes included


def set_session_cookie(response: Response, settings: BffSettings, session_id: str, max_age: int) -> None:
    response.set_cookie(
        settings.cookie_name,
        session_id,
        max_age=max(0, max_age),
        path="/",
        secure=settings.secure_cookie,
        httponly=True,
        samesite=settings.same_site,
    )


def clear_session_cookie(response: Response, settings: BffSettings) -> None:
    response.delete_cookie(
        settings.cookie_name, path="/", secure=settings.secure_cookie, httponly=True, samesite=settings.same_site
    )


class LoginCookie:
    """Seal and open the login round trip's state."""

    def __init__(self, key: bytes, settings: BffSettings) -> None:
        self._aead = AESGCM(key)
        self._settings = settings

    def seal(self, body: dict[str, Any], now: float) -> str:
        data = json.dumps({"b": body, "exp": now + self._settings.login_ttl}, separators=(",", ":")).encode()
        nonce = os.urandom(12)
        return b64url(nonce + self._aead.encrypt(nonce, data, _LOGIN_AAD))

    def open(self, value: str | None, now: float) -> dict[str, Any] | None:
        """The body, or None when absent, forged, from another key, or expired."""
        if not value or len(value) > MAX_COOKIE:
            return None
        try:
            blob = b64url_decode(value)
            data = json.loads(self._aead.decrypt(blob[:12], blob[12:], _LOGIN_AAD))
        except (InvalidTag, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("b"), dict) or float(data.get("exp", 0)) <= now:
            return None
        return data["b"]

    def read(self, request: Request, now: float) -> dict[str, Any] | None:
        return self.open(request.cookies.get(self._settings.login_cookie_name), now)

    def set(self, response: Response, body: dict[str, Any], now: float) -> None:
        response.set_cookie(
            self._settings.login_cookie_name,
            self.seal(body, now),
            max_age=self._settings.login_ttl,
            path="/",
            secure=self._settings.secure_cookie,
            httponly=True,
            samesite="lax",
        )

    def clear(self, response: Response) -> None:
        response.delete_cookie(
            self._settings.login_cookie_name, path="/", secure=self._settings.secure_cookie, httponly=True,
            samesite="lax",
        )  # fmt: skip
