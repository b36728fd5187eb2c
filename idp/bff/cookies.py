"""The BFF's two cookies.

* The session cookie (``__Host-bff``): the random session id, HttpOnly, Secure, Path=/, no Domain, SameSite
  Lax or Strict, Max-Age the session's remaining absolute lifetime. The store keys the session by its digest.
* The login cookie (``__Host-bff-login``): the random id (256 bits) of one sign-in round trip under way,
  HttpOnly, Secure, Path=/, Max-Age the login TTL. The round trip's state (Authlib's state, nonce, PKCE
  verifier, where to go afterwards) is a server-side record keyed by the id's digest (:mod:`idp.bff.login`);
  the callback takes it once and clears the cookie. SameSite=Lax: the callback is a top-level navigation back
  from idp, which Strict would strip.

Neither cookie carries anything but a random id: no state travels signed or sealed in the browser.
"""

from __future__ import annotations

from starlette.responses import Response

from idp.bff.config import BffSettings


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


def set_login_cookie(response: Response, settings: BffSettings, login_id: str) -> None:
    response.set_cookie(
        settings.login_cookie_name,
        login_id,
        max_age=settings.login_ttl,
        path="/",
        secure=settings.secure_cookie,
        httponly=True,
        samesite="lax",
    )


def clear_login_cookie(response: Response, settings: BffSettings) -> None:
    response.delete_cookie(
        settings.login_cookie_name, path="/", secure=settings.secure_cookie, httponly=True, samesite="lax"
    )
