"""GET/POST /login: the sign-in form (CSRF, rendering, cookies); :mod:`idp.sessions.signin` signs in."""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.interaction import SESSION_COOKIE, PendingAuthorization
from idp.peer import client_ip
from idp.services import Services, services_of
from idp.sessions.csrf import LoginFormCsrf
from idp.sessions.second_step import TTL as SECOND_STEP_TTL
from idp.sessions.signin import Browser, Locked, Refused, SecondFactor, SignedIn, SignIn
from idp.web.pages.forms import (
    LOGIN_COOKIE,
    SECOND_STEP_COOKIE,
    clear_cookie,
    csp_for,
    one,
    page,
    safe_next,
    same_origin,
    see_other,
    session_cookie,
    set_cookie,
    user_agent,
)
from idp.web.templating import error_page, render

BAD_CREDENTIALS = "Incorrect username or password."
TOO_MANY = "Too many attempts. Please wait a moment and try again."
EXPIRED_INTERACTION = "This sign-in request has expired. Go back to the application and start again."


def resume_url(interaction_id: str) -> str:
    return f"/authorize/resume?interaction={quote(interaction_id)}"


def _csrf(c: Services) -> LoginFormCsrf:
    return LoginFormCsrf(c.digester.digest, c.clock)


def _sign_in(c: Services) -> SignIn:
    return SignIn(
        throttle=c.throttle, directory=c.directory, sessions=c.login_sessions,
        interactions=c.interactions, audit=c.audit, factors=c.factors, second_steps=c.second_steps, clock=c.clock,
    )  # fmt: skip


async def _form(request: Request, c: Services, **kw: Any) -> Response:
    return await run_in_threadpool(functools.partial(_render_form, request, c, **kw))  # client lookup: SQL


def _render_form(
    request: Request,
    c: Services,
    *,
    pending: PendingAuthorization | None,
    next_path: str,
    username: str,
    signed_in_as: str | None,
    error: str = "",
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    csrf = _csrf(c)
    pre = request.cookies.get(LOGIN_COOKIE)
    pre = pre if pre and len(pre) <= 64 else csrf.new_cookie()
    client = c.clients.get(pending.client_id) if pending else None
    context: dict[str, Any] = {
        "title": "Sign in",
        "csrf": csrf.issue(pre),
        "interaction": pending.id if pending else "",
        "next": next_path if not pending else "",
        "username": username,
        "signed_in_as": signed_in_as,
        "client_name": client.name if client else None,
        "error": error,
        "passkeys": c.settings.passkeys_enabled,
    }
    response = render("login.html", context, status, (headers or {}) | csp_for(pending))
    set_cookie(response, LOGIN_COOKIE, pre, csrf.ttl)
    return response


def _username(c: Services, user_id: str) -> str | None:
    user = c.directory.store.get(user_id)
    return user.username if user else None


@page
async def login_page(request: Request) -> Response:
    c = services_of(request)
    interaction_id = one(request.query_params, "interaction", 64)
    switching = one(request.query_params, "switch", 8) == "1"
    reauth = one(request.query_params, "reauth", 8) == "1"  # a sensitive account change: confirm who you are
    next_path = safe_next(one(request.query_params, "next", 512))
    pending = await run_in_threadpool(c.interactions.get, interaction_id) if interaction_id else None
    if interaction_id and pending is None:
        return error_page("interaction_expired", EXPIRED_INTERACTION, 400)
    session = await run_in_threadpool(c.login_sessions.current, session_cookie(request))
    if session is not None and pending is None and not switching and not reauth:
        return see_other(next_path)  # already signed in; nothing to ask
    signed_in_as = await run_in_threadpool(_username, c, session.user_id) if session and not switching else None
    hint = pending.params.get("login_hint", "")[:200] if pending else ""
    return await _form(
        request, c, pending=pending, next_path=next_path, username=signed_in_as or hint, signed_in_as=signed_in_as
    )


@page
async def login_submit(request: Request) -> Response:
    c = services_of(request)
    form = await request.form()
    interaction_id = one(form, "interaction", 64)
    next_path = safe_next(one(form, "next", 512))
    username = one(form, "username", 200)
    password = one(form, "password", 1024)
    pending = await run_in_threadpool(c.interactions.get, interaction_id) if interaction_id else None
    if interaction_id and pending is None:
        return error_page("interaction_expired", EXPIRED_INTERACTION, 400)

    async def again(error: str, status: int, headers: dict[str, str] | None = None) -> Response:
        return await _form(
            request, c, pending=pending, next_path=next_path, username=username, signed_in_as=None,
            error=error, status=status, headers=headers,
        )  # fmt: skip

    if not same_origin(request, c.settings.issuer):
        return error_page("invalid_request", "This form was sent from another site and was not accepted.", 400)
    verdict = _csrf(c).check(request.cookies.get(LOGIN_COOKIE), one(form, "csrf", 200))
    if verdict != "ok":  # nothing is checked or changed without a valid token
        return await again("Your sign-in form expired. Please try again.", 400)
    if not username or not password:
        return await again("Enter your username and password.", 400)
    browser = Browser(client_ip(request), user_agent(request), session_cookie(request))
    outcome = await run_in_threadpool(_sign_in(c).attempt, username, password, browser, pending, next_path)
    if isinstance(outcome, Refused):
        return await again(BAD_CREDENTIALS, 400)
    if isinstance(outcome, Locked):
        return await again(TOO_MANY, 429, {"retry-after": str(outcome.retry_after)})
    if isinstance(outcome, SecondFactor):  # not signed in yet: the second step holds what the password proved
        response = see_other("/login/enrol" if outcome.step.enrol else "/login/factor")
        set_cookie(response, SECOND_STEP_COOKIE, outcome.token, int(SECOND_STEP_TTL))
        clear_cookie(response, LOGIN_COOKIE)
        return response
    return signed_in(outcome, pending, next_path)


def signed_in(outcome: SignedIn, pending: PendingAuthorization | None, next_path: str) -> Response:
    """The session cookie, and back to the authorization request (or the page that asked for the sign-in)."""
    return session_cookies(see_other(resume_url(pending.id) if pending else next_path), outcome)


def session_cookies(response: Response, outcome: SignedIn) -> Response:
    """The new session's cookie; the sign-in's own cookies go."""
    session = outcome.session
    set_cookie(response, SESSION_COOKIE, outcome.cookie, int(session.absolute_expires_at - session.auth_time))
    clear_cookie(response, LOGIN_COOKIE)
    clear_cookie(response, SECOND_STEP_COOKIE)
    return response


ROUTES: tuple[Route, ...] = (
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login_submit, methods=["POST"]),
)
