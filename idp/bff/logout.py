"""Signing out through the BFF, the way Duende BFF does it: the SPA never holds the ID token.

* ``GET /bff/user`` shows ``logout_url``: ``/bff/logout?sid=<handle>``, where the handle is a random value
  made with the session and kept in it, sealed like its tokens (not a token: it opens nothing at idp, and
  without the session cookie it opens nothing here either).
* The SPA *navigates* there (``location.href = logout_url``). With the session's handle (compared in
  constant time), the BFF ends its session, revokes the refresh token at idp (RFC 7009) and answers 303 to
  idp's ``end_session_endpoint`` with ``id_token_hint``, ``post_logout_redirect_uri`` and ``state``
  (OIDC RP-Initiated Logout 1.0 §2). The ID token travels only in that redirect, which the browser follows
  as a navigation: no script reads a top-level navigation's redirect.
* Without the handle (a cross-site link or ``<img>``: the ``Lax`` cookie would come along) the request
  is refused and the session stays; so is a script's ``fetch`` (``Sec-Fetch-Mode`` other than
  ``navigate``) and a request another site started (``Sec-Fetch-Site`` ``cross-site`` or ``same-site``).
* Without a session there is nothing to end here; the redirect goes to idp without a hint, and idp asks
  the person before it ends its own session.
* ``POST /bff/logout`` (``X-CSRF: 1`` and the BFF's ``Origin``) answers ``{"logout_url": ...}``, the same
  URL to navigate to, for SPAs that ask when they need it; it ends nothing and returns no token.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import secrets
from collections.abc import Mapping
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from idp.bff.context import Bff
from idp.bff.cookies import clear_session_cookie
from idp.bff.errors import NO_STORE, json_error
from idp.bff.sealing import SealBroken, SessionCrypto
from idp.bff.session import BffSession

log = logging.getLogger("idp.bff")

HANDLE = "logout"  # the session's extra entry holding its logout handle
HANDLE_BYTES = 32
MAX_HANDLE = 128
PATH = "/bff/logout"
REFUSED_SITES = frozenset({"cross-site", "same-site"})


def _aad(session: BffSession) -> str:
    return f"logout:{session.key}"


def with_handle(crypto: SessionCrypto, session: BffSession) -> BffSession:
    """``session`` (its key set) with a fresh logout handle, sealed under the record key."""
    sealed = crypto.seal(secrets.token_urlsafe(HANDLE_BYTES).encode(), _aad(session))
    return dataclasses.replace(session, extra={**session.extra, HANDLE: sealed})


def handle_of(crypto: SessionCrypto, session: BffSession) -> str | None:
    sealed = session.extra.get(HANDLE)
    if not isinstance(sealed, str) or not sealed:
        return None
    try:
        return crypto.open(sealed, _aad(session)).decode()
    except SealBroken:
        return None


def logout_url(crypto: SessionCrypto, session: BffSession) -> str | None:
    """Where the SPA navigates to sign out; None for a session without a handle."""
    handle = handle_of(crypto, session)
    return f"{PATH}?{urlencode({'sid': handle})}" if handle else None


def handle_matches(crypto: SessionCrypto, session: BffSession, given: str | None) -> bool:
    if not given or len(given) > MAX_HANDLE:
        return False
    stored = handle_of(crypto, session)
    return stored is not None and hmac.compare_digest(stored.encode(), given.encode())


def _navigation_problem(headers: Mapping[str, str]) -> str | None:
    mode = headers.get("sec-fetch-mode")
    if mode is not None and mode.strip().lower() != "navigate":
        return "sign-out is a top-level navigation to logout_url, not a script's request"
    site = headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() in REFUSED_SITES:
        return "another site started this request"
    return None


async def sign_out(bff: Bff, request: Request) -> Response:
    """``GET /bff/logout?sid=<handle>``: see the module docstring."""
    if request.method != "GET":
        return json_error(405, "invalid_request", "GET, as a top-level navigation", allow="GET, POST")
    problem = _navigation_problem(request.headers)
    if problem is not None:
        return json_error(403, "access_denied", problem)
    given = request.query_params.get("sid")
    session = await bff.session_of(request, touch=False)
    if session is not None:
        if not given:
            return json_error(400, "invalid_request", "sign-out needs the sid of /bff/user's logout_url")
        if not handle_matches(bff.crypto, session, given):
            return json_error(403, "access_denied", "this sid is not the session's")
        await bff.store.delete(session.key)
        await _revoke(bff, session)
    target = await _end_session_url(bff, session)
    response = RedirectResponse(target, status_code=303, headers={**NO_STORE, "referrer-policy": "no-referrer"})
    if session is not None or request.cookies.get(bff.settings.cookie_name):
        clear_session_cookie(response, bff.settings)
    return response


async def logout_link(bff: Bff, request: Request) -> Response:
    """``POST /bff/logout``: the URL to navigate to, for the fetch-minded SPA."""
    refused = bff.csrf.reject(request, require_origin=True)
    if refused is not None:
        return refused
    session = await bff.session_of(request)
    url = logout_url(bff.crypto, session) if session is not None else None
    if url is None:
        return json_error(401, "unauthenticated", "no session", vary="cookie")
    return JSONResponse({"logout_url": url}, headers={**NO_STORE, "vary": "cookie"})


async def _revoke(bff: Bff, session: BffSession) -> None:
    if not session.tokens.refresh_token:
        return
    try:  # the BFF will never use it again: idp may forget it now, not when it expires
        await bff.oidc.revoke(session.tokens.refresh_token)
    except Exception as exc:
        log.warning("BFF logout could not revoke the refresh token: %s", type(exc).__name__)


async def _end_session_url(bff: Bff, session: BffSession | None) -> str:
    """idp's end-session URL. ``state`` is fresh per sign-out and idp echoes it to the landing page (the
    SPA's root, which acts on nothing it carries); the BFF keeps no record of it."""
    settings = bff.settings
    try:
        return await bff.oidc.end_session_url(
            id_token=session.tokens.id_token if session is not None else None,
            post_logout_redirect_uri=settings.post_logout_redirect_uri,
            state=secrets.token_urlsafe(16),
        )
    except Exception as exc:  # the local session has ended either way
        log.warning("BFF logout could not read idp's metadata: %s", type(exc).__name__)
        return settings.post_logout_redirect_uri
