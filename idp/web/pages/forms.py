"""Shared plumbing of the hosted pages: form fields, the Origin check, cookies, request facts, safe errors."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from idp.ephemeral import StoreUnavailable
from idp.interaction import SESSION_COOKIE, PendingAuthorization
from idp.web.middleware import CSP
from idp.web.templating import error_page

log = logging.getLogger("idp.web")
LOGIN_COOKIE = "__Host-idp-login"  # pre-session cookie the sign-in form's CSRF token is bound to
SECOND_STEP_COOKIE = "__Host-idp-2fa"  # a sign-in between its password and its second factor (idp.sessions.second_step)
MAX_FIELD = 4096


class BadForm(Exception):
    """A malformed request to a page: shown as a 400 page, nothing changed."""


def one(data: Any, name: str, max_len: int = MAX_FIELD) -> str:
    """The single value of a query or form field ('' when absent); repeated or oversized fields are refused."""
    values = data.getlist(name)
    if len(values) > 1:
        raise BadForm(f"The parameter '{name}' was sent more than once.")
    value = values[0] if values else ""
    if not isinstance(value, str) or len(value) > max_len or "\x00" in value:  # NUL: PostgreSQL refuses it
        raise BadForm(f"The parameter '{name}' is not acceptable.")
    return value


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(request: Request, issuer: str) -> bool:
    """Origin (else Referer) must name us. Browsers send ``Origin: null`` on form posts from pages with
    ``Referrer-Policy: no-referrer`` (ours), and may omit both: then the synchronizer token decides alone."""
    expected = origin_of(issuer)
    origin = request.headers.get("origin")
    if origin and origin != "null":
        return origin.lower() == expected
    referer = request.headers.get("referer")
    if referer:
        return origin_of(referer) == expected
    return True


_SCHEME = re.compile(r"[a-z][a-z0-9+.-]{0,62}")


def csp_for(pending: PendingAuthorization | None) -> dict[str, str]:
    """CSP for a page whose form ends in a redirect to a native app's private-use scheme (RFC 8252 §7.1).

    ``form-action`` also governs the redirects after a form post, and the default policy
    names only http(s): Chromium would block ``com.example.app:/cb?code=…``. Such a
    page allows exactly that one scheme; the redirect URI was already checked by the
    authorization endpoint against the client's registration.
    """
    uri = pending.params.get("redirect_uri", "") if pending is not None else ""
    scheme = urlsplit(uri).scheme.lower()
    if scheme in ("", "http", "https") or not _SCHEME.fullmatch(scheme):
        return {}
    directives = [d.strip() for d in CSP.split(";")]
    directives = [f"{d} {scheme}:" if d.startswith("form-action") else d for d in directives]
    return {"content-security-policy": "; ".join(directives)}


def user_agent(request: Request) -> str:
    return request.headers.get("user-agent", "")[:300]


def session_cookie(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE)


def set_cookie(response: Response, name: str, value: str, max_age: int) -> None:
    """``__Host-`` rules (RFC 6265bis §4.1.3.2): Secure, Path=/, no Domain. Browsers accept Secure on http://localhost."""
    response.set_cookie(name, value, max_age=max(int(max_age), 0), path="/", secure=True, httponly=True, samesite="lax")


def clear_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", secure=True, httponly=True, samesite="lax")


def see_other(url: str) -> Response:
    """After a POST always 303, never 307 (RFC 9700 §4.12: a 307 would re-POST the credentials)."""
    return Response(status_code=303, headers={"location": url})


_PATH_CHARS = re.compile(r"[\x21-\x7e]+")


def safe_next(value: str | None, default: str = "/account") -> str:
    """Only same-origin relative paths (RFC 9700 §4.11: no open redirector)."""
    if not value or len(value) > 512 or not value.startswith("/") or value.startswith("//"):
        return default
    if "\\" in value or not _PATH_CHARS.fullmatch(value):  # controls, space, DEL, non-ASCII: no header carries them
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


Handler = Callable[[Request], Awaitable[Response]]


def page(handler: Handler) -> Handler:
    """Errors on a page become the friendly error page; never a stack trace, never JSON."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except BadForm as exc:
            return error_page("invalid_request", str(exc), 400)
        except HTTPException as exc:
            return error_page("invalid_request", "The request could not be read.", exc.status_code)
        except StoreUnavailable:
            return error_page("temporarily_unavailable", "Please try again in a moment.", 503, {"retry-after": "1"})
        except Exception:
            log.exception("page %s %s failed", request.method, request.url.path)
            return error_page("server_error", "Please try again. If it keeps happening, contact support.", 500)

    return wrapped
