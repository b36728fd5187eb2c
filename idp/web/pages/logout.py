"""/logout: OpenID Connect RP-Initiated Logout 1.0 (GET and POST), plus the confirmation form.

* ``id_token_hint`` must be an ID token we signed (expired is fine); its ``aud``
  must contain ``client_id`` when both are sent.
* ``post_logout_redirect_uri`` is followed only when it exactly matches one
  registered for the identified client (RFC 9700 §4.11: no open redirector);
  ``state`` is echoed.
* Only a request tied to the current session (the hint's ``sid``/``sub``) logs out
  at once; otherwise the person confirms with a CSRF-protected POST, so another
  site cannot sign people out with a link (ASVS V10.6.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.interaction import MAX_CLIENT_ID, MAX_STATE, MAX_URI, SESSION_COOKIE
from idp.services import Services, services_of
from idp.sessions.csrf import check_session_token, session_token
from idp.sessions.store import LoginSession
from idp.tokens.id_token_hint import MAX_HINT, Hint, verify_hint
from idp.web.pages.forms import clear_cookie, one, page, same_origin, see_other, session_cookie
from idp.web.templating import error_page, render

PURPOSE = "logout"


@dataclass
class LogoutRequest:
    client_id: str | None
    redirect: str | None  # validated post_logout_redirect_uri, or None
    state: str
    tied: bool  # the hint names the current session
    session: LoginSession | None


def _with_state(uri: str, state: str) -> str:
    if not state:
        return uri
    return uri + ("&" if "?" in uri else "?") + urlencode({"state": state})


def _registered(c: Services, client_id: str | None, uri: str) -> tuple[str | None, str | None]:
    client = c.clients.get_active(client_id) if client_id else None
    if client is None:
        return None, None
    # OIDC RP-Initiated Logout 1.0 §3: the URI MUST have been registered; exact string match.
    return client.client_id, (uri if uri and client.post_logout_redirect_uri_allowed(uri) else None)


def _parse(c: Services, params: Any, cookie: str | None) -> LogoutRequest:
    hint = one(params, "id_token_hint", MAX_HINT)
    client_id = one(params, "client_id", MAX_CLIENT_ID) or None
    uri = one(params, "post_logout_redirect_uri", MAX_URI)
    state = one(params, "state", MAX_STATE)
    claims: Hint | None = None
    if hint:
        claims = verify_hint(c.keyring, hint, issuer=c.settings.issuer, now=c.clock.now())
    if claims is not None:
        auds = claims.audiences
        if client_id is None:
            client_id = claims.azp or (auds[0] if len(auds) == 1 else None)
        elif client_id not in auds:  # RP-Initiated Logout §2: client_id must match the hint's audience
            claims, client_id = None, None
    client_id, redirect = _registered(c, client_id, uri)
    session = c.login_sessions.current(cookie, slide=False)
    tied = bool(
        session is not None
        and claims is not None
        and claims.sub == session.user_id
        and (claims.sid is None or claims.sid == session.sid)
    )
    return LogoutRequest(client_id, redirect, state, tied, session)


def _finish(request: Request, req: LogoutRequest, *, after_post: bool) -> Response:
    if req.redirect:
        response = see_other(_with_state(req.redirect, req.state))
    elif after_post:
        response = see_other("/logout/done")
    else:
        response = render("logged_out.html", {"title": "Signed out", "everywhere": False})
    clear_cookie(response, SESSION_COOKIE)
    return response


def _end(c: Services, cookie: str | None, session: LoginSession | None) -> None:
    if session is not None:
        c.login_sessions.end(cookie, actor=session.user_id, reason="logout")


@page
async def logout(request: Request) -> Response:
    c = services_of(request)
    cookie = session_cookie(request)
    params: Any = request.query_params if request.method == "GET" else await request.form()
    if request.method == "POST" and one(params, "confirm", 8):
        return await _confirmed(c, request, params, cookie)
    req = await run_in_threadpool(_parse, c, params, cookie)
    if req.session is None or req.tied:
        await run_in_threadpool(_end, c, cookie, req.session)
        return _finish(request, req, after_post=False)
    user = await run_in_threadpool(c.directory.store.get, req.session.user_id)
    client = await run_in_threadpool(c.clients.get, req.client_id) if req.client_id else None
    context = {
        "title": "Sign out?",
        "username": user.username if user else "",
        "client_name": client.name if client else None,
        "client_id": req.client_id or "",
        "post_logout_redirect_uri": req.redirect or "",
        "state": req.state,
        "csrf": session_token(req.session.csrf_secret, PURPOSE),
    }
    return render("logout_confirm.html", context)


async def _confirmed(c: Services, request: Request, form: Any, cookie: str | None) -> Response:
    if not same_origin(request, c.settings.issuer):
        return error_page("invalid_request", "This form was sent from another site and was not accepted.", 400)
    session = await run_in_threadpool(c.login_sessions.current, cookie, slide=False)
    if session is not None and not check_session_token(session.csrf_secret, PURPOSE, one(form, "csrf", 200)):
        return error_page("invalid_request", "This form has expired. Reload the page and try again.", 400)
    client_id, redirect = await run_in_threadpool(
        _registered, c, one(form, "client_id", MAX_CLIENT_ID) or None, one(form, "post_logout_redirect_uri", MAX_URI)
    )
    await run_in_threadpool(_end, c, cookie, session)
    req = LogoutRequest(client_id, redirect, one(form, "state", MAX_STATE), True, session)
    return _finish(request, req, after_post=True)


@page
async def done(request: Request) -> Response:
    everywhere = one(request.query_params, "everywhere", 4) == "1"
    return render("logged_out.html", {"title": "Signed out", "everywhere": everywhere})


ROUTES: tuple[Route, ...] = (
    Route("/logout", logout, methods=["GET", "POST"]),
    Route("/logout/done", done, methods=["GET"]),
)
