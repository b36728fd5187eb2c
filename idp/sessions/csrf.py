"""CSRF synchronizer tokens.

* After sign-in, a form token is ``HMAC(session.csrf_secret, purpose)``: bound to
  the server-side session (a new secret at every login and privilege change) and
  to what the form does (``account``, ``logout``, ``consent:<interaction>``), so a
  token leaked from one form cannot drive another.
* The login form has no session yet (login CSRF would sign the victim into the
  attacker's account). It is bound to a short-lived random pre-session cookie
  instead: ``EXP.HMAC(server key, "csrf-login|" + cookie + "|" + EXP)``. An
  attacker can obtain a token for their own cookie but cannot set the victim's
  ``__Host-`` cookie, nor mint a token for the victim's without the server key.

Tokens are compared in constant time. The Origin/Referer check lives with the
HTTP routes (idp.web.pages.forms); it is defence in depth, the token is the rule.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable

from idp.clock import Clock
from idp.crypto import b64url

LOGIN_FORM_TTL = 3600
MAX_TOKEN_LEN = 200


def session_token(csrf_secret: bytes, purpose: str) -> str:
    return b64url(hmac.new(csrf_secret, f"idp/csrf/v1|{purpose}".encode(), hashlib.sha256).digest())


def check_session_token(csrf_secret: bytes, purpose: str, token: str | None) -> bool:
    if not token or len(token) > MAX_TOKEN_LEN:
        return False
    return hmac.compare_digest(session_token(csrf_secret, purpose).encode(), token.encode())


class LoginFormCsrf:
    """Tokens for the sign-in form, bound to the pre-session cookie. ``mac`` is a keyed hash (the Digester)."""

    def __init__(self, mac: Callable[[str], bytes], clock: Clock, ttl: int = LOGIN_FORM_TTL) -> None:
        self._mac = mac
        self._clock = clock
        self.ttl = ttl

    @staticmethod
    def new_cookie() -> str:
        return secrets.token_urlsafe(16)

    def _sign(self, cookie: str, exp: int) -> str:
        return b64url(self._mac(f"csrf-login|{cookie}|{exp}"))

    def issue(self, cookie: str) -> str:
        exp = int(self._clock.now()) + self.ttl
        return f"{exp}.{self._sign(cookie, exp)}"

    def check(self, cookie: str | None, token: str | None) -> str:
        """'ok', 'expired' (well-formed and genuine but too old) or 'bad'."""
        if not cookie or not token or len(token) > MAX_TOKEN_LEN or len(cookie) > 64 or "." not in token:
            return "bad"
        exp_text, mac = token.split(".", 1)
        if not exp_text.isdigit() or len(exp_text) > 12:
            return "bad"
        exp = int(exp_text)
        if not hmac.compare_digest(self._sign(cookie, exp).encode(), mac.encode()):
            return "bad"
        return "ok" if self._clock.now() < exp else "expired"
