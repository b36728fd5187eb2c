"""Passkeys on the hosted pages: sign in with one (``/login/passkey``) and manage them from ``/account``.

Each ceremony has two requests. The options (``POST …/options``, JSON) need the page's CSRF token and a
same-origin request; the browser's answer then comes back in an ordinary form post (``credential``, the
``PublicKeyCredential`` JSON, and ``ceremony``), answered like the password form: a 303, or the page again
with an error. Sign-in ceremonies are bound to the pre-session cookie, registrations to the login session.

Adding or removing a passkey needs a recent sign-in (``reauth_seconds``): an older session is sent to
``/login?reauth=1`` first, where a password or a passkey confirms who it is.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.interaction import SESSION_COOKIE, PendingAuthorization
from idp.oauth.responses import NO_STORE, json_response
from idp.peer import client_ip
from idp.services import Services, services_of
from idp.sessions.csrf import check_session_token
from idp.sessions.passkeys import PasskeyError, SignedInWithPasskey
from idp.sessions.store import LoginSession
from idp.web.pages import login
from idp.web.pages.account import PURPOSE, _view, action, is_fresh
from idp.web.pages.forms import (
    LOGIN_COOKIE,
    clear_cookie,
    one,
    page,
    safe_next,
    same_origin,
    see_other,
    session_cookie,
    set_cookie,
    user_agent,
)
from idp.web.templating import error_page

MAX_CREDENTIAL = 16 * 1024
REAUTH_URL = "/login?reauth=1&next=/account"
NOT_YOURS = "That passkey could not be used to sign in."


def _json_error(message: str, status: int = 400) -> Response:
    return json_response({"error": message}, status, NO_STORE)


def _ceremony(ceremony_id: str, options: dict[str, Any]) -> Response:
    return json_response({"ceremony": ceremony_id, "publicKey": options}, 200, NO_STORE)


# -- sign in ---------------------------------------------------------------------------------
@page
async def signin_options(request: Request) -> Response:
    c = services_of(request)
    form = await request.form()
    if not c.settings.passkeys_enabled:
        return _json_error("Passkeys are turned off here.", 404)
    if not same_origin(request, c.settings.issuer):
        return _json_error("This request was sent from another site and was not accepted.")
    pre = request.cookies.get(LOGIN_COOKIE)
    if login._csrf(c).check(pre, one(form, "csrf", 200)) != "ok" or not pre:
        return _json_error("Your sign-in form expired. Reload the page and try again.")
    ceremony = await run_in_threadpool(lambda: c.passkeys.authentication_options(binding=pre))
    return _ceremony(ceremony.id, ceremony.options)


def _finish_sign_in(
    c: Services, result: SignedInWithPasskey, request: Request, pending: PendingAuthorization | None
) -> tuple[str, LoginSession] | None:
    user = c.directory.store.get(result.passkey.user_id)
    if user is None or user.disabled:
        c.audit.record("login.failed", ip=client_ip(request), method="passkey")
        return None
    cookie, session = c.login_sessions.login(
        user.id, amr=result.methods, user_agent=user_agent(request), ip=client_ip(request),
        previous_cookie=session_cookie(request),
    )  # fmt: skip
    if pending is not None:
        pending.login_sid = session.sid
        pending.login_at = session.auth_time
        c.interactions.save(pending)
    c.audit.record("login", actor=user.id, subject=user.id, ip=client_ip(request), sid=session.sid,
                   method="passkey", passkey_id=result.passkey.id)  # fmt: skip
    return cookie, session


@page
async def signin_submit(request: Request) -> Response:
    c = services_of(request)
    form = await request.form()
    interaction_id = one(form, "interaction", 64)
    next_path = safe_next(one(form, "next", 512))
    pending = await run_in_threadpool(c.interactions.get, interaction_id) if interaction_id else None
    if interaction_id and pending is None:
        return error_page("interaction_expired", login.EXPIRED_INTERACTION, 400)

    async def again(error: str, status: int = 400) -> Response:
        return await login._form(
            request, c, pending=pending, next_path=next_path, username="", signed_in_as=None, error=error,
            status=status,
        )  # fmt: skip

    if not c.settings.passkeys_enabled:
        return error_page("invalid_request", "Passkeys are turned off here.", 404)
    if not same_origin(request, c.settings.issuer):
        return error_page("invalid_request", "This form was sent from another site and was not accepted.", 400)
    pre = request.cookies.get(LOGIN_COOKIE)
    if login._csrf(c).check(pre, one(form, "csrf", 200)) != "ok" or not pre:
        return await again("Your sign-in form expired. Please try again.")
    ceremony_id, credential = one(form, "ceremony", 64), one(form, "credential", MAX_CREDENTIAL)
    try:
        result = await run_in_threadpool(
            lambda: c.passkeys.authenticate(
                binding=pre, ceremony_id=ceremony_id, response=credential, ip=client_ip(request)
            )
        )
    except PasskeyError as exc:
        return await again(str(exc))
    signed_in = await run_in_threadpool(_finish_sign_in, c, result, request, pending)
    if signed_in is None:
        return await again(NOT_YOURS)
    cookie, session = signed_in
    response = see_other(login.resume_url(pending.id) if pending else next_path)
    set_cookie(response, SESSION_COOKIE, cookie, int(session.absolute_expires_at - session.auth_time))
    clear_cookie(response, LOGIN_COOKIE)
    return response


# -- the account page ------------------------------------------------------------------------
@page
async def register_options(request: Request) -> Response:
    c = services_of(request)
    form = await request.form()
    if not c.settings.passkeys_enabled:
        return _json_error("Passkeys are turned off here.", 404)
    if not same_origin(request, c.settings.issuer):
        return _json_error("This request was sent from another site and was not accepted.")
    session = await run_in_threadpool(c.login_sessions.current, session_cookie(request))
    if session is None:
        return _json_error("Your session ended. Sign in again.", 403)
    if not check_session_token(session.csrf_secret, PURPOSE, one(form, "csrf", 200)):
        return _json_error("This page has expired. Reload it and try again.")
    if not is_fresh(c, session):
        return _json_error("Please confirm it's you first: reload the page and sign in again.", 403)
    user = await run_in_threadpool(c.directory.store.get, session.user_id)
    if user is None:
        return _json_error("Your account is not available.", 403)
    try:
        ceremony = await run_in_threadpool(
            lambda: c.passkeys.registration_options(user.id, user.username, user.name or "", binding=session.sid)
        )
    except PasskeyError as exc:
        return _json_error(str(exc))
    return _ceremony(ceremony.id, ceremony.options)


@action
async def register_submit(c: Services, request: Request, form: Any, session: LoginSession) -> Response:
    if not c.settings.passkeys_enabled:
        return error_page("invalid_request", "Passkeys are turned off here.", 404)
    if not is_fresh(c, session):
        return see_other(REAUTH_URL)
    ceremony_id, credential = one(form, "ceremony", 64), one(form, "credential", MAX_CREDENTIAL)
    name = one(form, "name", 200)
    try:
        await run_in_threadpool(
            lambda: c.passkeys.register(
                session.user_id, binding=session.sid, ceremony_id=ceremony_id, response=credential, name=name,
                ip=client_ip(request),
            )
        )  # fmt: skip
    except PasskeyError as exc:
        message = str(exc)
        return await run_in_threadpool(lambda: _view(c, session, error=message, status=400))
    return see_other("/account?done=passkey_added#passkeys")


@action
async def rename(c: Services, request: Request, form: Any, session: LoginSession) -> Response:
    passkey_id, name = one(form, "passkey_id", 64), one(form, "name", 200)
    done = await run_in_threadpool(lambda: c.passkeys.rename(session.user_id, passkey_id, name, ip=client_ip(request)))
    if not done:
        return await run_in_threadpool(
            lambda: _view(c, session, error="Give the passkey a name (letters, digits, spaces).", status=400)
        )
    return see_other("/account?done=passkey_renamed#passkeys")


@action
async def remove(c: Services, request: Request, form: Any, session: LoginSession) -> Response:
    if not is_fresh(c, session):
        return see_other(REAUTH_URL)
    passkey_id = one(form, "passkey_id", 64)
    await run_in_threadpool(lambda: c.passkeys.remove(session.user_id, passkey_id, ip=client_ip(request)))
    return see_other("/account?done=passkey_removed#passkeys")


ROUTES: tuple[Route, ...] = (
    Route("/login/passkey/options", signin_options, methods=["POST"]),
    Route("/login/passkey", signin_submit, methods=["POST"]),
    Route("/account/passkeys/options", register_options, methods=["POST"]),
    Route("/account/passkeys/add", register_submit, methods=["POST"]),
    Route("/account/passkeys/rename", rename, methods=["POST"]),
    Route("/account/passkeys/remove", remove, methods=["POST"]),
)
