"""Passkeys on the hosted pages: sign in with one (``/login/passkey``) and manage them from ``/account``.

Each ceremony has two requests. The options (``POST …/options``, JSON) need the page's CSRF token and a
same-origin request; the browser's answer then comes back in an ordinary form post (``credential``, the
``PublicKeyCredential`` JSON, and ``ceremony``), answered like the password form: a 303, or the page again
with an error. Sign-in ceremonies are bound to the pre-session cookie, registrations to the login session.

Adding or removing a passkey needs a recent sign-in (``reauth_seconds``): an older session is sent to
``/login?reauth=1`` first, where a password or a passkey confirms who it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.interaction import SESSION_COOKIE, PendingAuthorization
from idp.oauth.responses import NO_STORE, json_response
from idp.peer import client_ip
from idp.services import Services, services_of
from idp.sessions.csrf import check_session_token, session_token
from idp.sessions.passkeys import Ceremony, PasskeyError, TooManyCeremonies
from idp.sessions.second_step import SecondStep
from idp.sessions.signin import Browser, SignedIn
from idp.sessions.store import LoginSession
from idp.web.pages import factor, login
from idp.web.pages.account import PURPOSE, REAUTH_URL, action, is_fresh, view
from idp.web.pages.account_factors import LAST_REQUIRED
from idp.web.pages.forms import (
    LOGIN_COOKIE,
    SECOND_STEP_COOKIE,
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
NOT_YOURS = "That passkey could not be used to sign in."


def _json_error(message: str, status: int = 400) -> Response:
    return json_response({"error": message}, status, NO_STORE)


def _ceremony(ceremony_id: str, options: dict[str, Any]) -> Response:
    return json_response({"ceremony": ceremony_id, "publicKey": options}, 200, NO_STORE)


async def _start(begin: Callable[[], Ceremony]) -> Response:
    """Start a ceremony (blocking: SQL, the shared store): its options, or the reason it was not started."""
    try:
        ceremony = await run_in_threadpool(begin)
    except TooManyCeremonies as exc:
        return json_response({"error": str(exc)}, 429, NO_STORE | {"retry-after": str(exc.retry_after)})
    except PasskeyError as exc:
        return _json_error(str(exc))
    return _ceremony(ceremony.id, ceremony.options)


def _options_refused(c: Services, request: Request) -> Response | None:
    """Every options endpoint: passkeys on, and a same-origin request (the page's token is checked next)."""
    if not c.settings.passkeys_enabled:
        return _json_error("Passkeys are turned off here.", 404)
    if not same_origin(request, c.settings.issuer):
        return _json_error("This request was sent from another site and was not accepted.")
    return None


# -- sign in ---------------------------------------------------------------------------------
@page
async def signin_options(request: Request) -> Response:
    c = services_of(request)
    form = await request.form()
    if (refused := _options_refused(c, request)) is not None:
        return refused
    pre = request.cookies.get(LOGIN_COOKIE)
    if login._csrf(c).check(pre, one(form, "csrf", 200)) != "ok" or not pre:
        return _json_error("Your sign-in form expired. Reload the page and try again.")
    ip = client_ip(request)
    return await _start(lambda: c.passkeys.authentication_options(binding=pre, ip=ip))


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
    browser = Browser(client_ip(request), user_agent(request), session_cookie(request))
    outcome = await run_in_threadpool(
        login._sign_in(c).passkey, result.passkey.user_id, result.methods, browser, pending
    )
    if not isinstance(outcome, SignedIn):
        return await again(NOT_YOURS)
    return login.signed_in(outcome, pending, next_path)


# -- the second factor, after the password or to step up ------------------------------------
def _factor_ceremony(
    c: Services, request: Request, form: Any
) -> tuple[str, str, SecondStep | None, LoginSession | None, str] | Response:
    """(binding, user id, the second step or the session stepping up, its interaction id), or the refusal.

    During a sign-in the ceremony is bound to the second-step cookie; a step-up's to the session."""
    token = request.cookies.get(SECOND_STEP_COOKIE)
    step = c.second_steps.get(token)
    if step is not None and not step.enrol and token:
        if not check_session_token(step.csrf_key, factor.STEP_PURPOSE, one(form, "csrf", 200)):
            return _json_error("This page has expired. Reload it and try again.")
        return token, step.user_id, step, None, step.interaction
    interaction_id = one(form, "interaction", 64)
    session = c.login_sessions.current(session_cookie(request))
    if session is None or not interaction_id:
        return _json_error(factor.START_AGAIN)
    if not check_session_token(session.csrf_secret, factor._step_up_purpose(interaction_id), one(form, "csrf", 200)):
        return _json_error("This page has expired. Reload it and try again.")
    return session.sid, session.user_id, None, session, interaction_id


@page
async def factor_options(request: Request) -> Response:
    c = services_of(request)
    form = await request.form()
    if (refused := _options_refused(c, request)) is not None:
        return refused
    found = await run_in_threadpool(_factor_ceremony, c, request, form)
    if isinstance(found, Response):
        return found
    binding, user_id, *_ = found
    ip = client_ip(request)
    return await _start(lambda: c.passkeys.authentication_options(binding=binding, user_id=user_id, ip=ip))


@page
async def factor_submit(request: Request) -> Response:
    c = services_of(request)
    form = await request.form()
    if not c.settings.passkeys_enabled:
        return error_page("invalid_request", "Passkeys are turned off here.", 404)
    if not same_origin(request, c.settings.issuer):
        return error_page("invalid_request", factor.FOREIGN, 400)
    found = await run_in_threadpool(_factor_ceremony, c, request, form)
    if isinstance(found, Response):
        return error_page("invalid_request", factor.START_AGAIN, 400)
    binding, user_id, step, session, interaction_id = found
    pending = await run_in_threadpool(factor._pending, c, interaction_id)
    if interaction_id and pending is None:
        return error_page("interaction_expired", login.EXPIRED_INTERACTION, 400)
    ip = client_ip(request)
    ceremony_id, credential = one(form, "ceremony", 64), one(form, "credential", MAX_CREDENTIAL)
    try:
        result = await run_in_threadpool(
            lambda: c.passkeys.authenticate(binding=binding, ceremony_id=ceremony_id, response=credential, ip=ip)
        )
    except PasskeyError as exc:
        message = str(exc)
        return await run_in_threadpool(lambda: _factor_again(c, user_id, step, session, pending, message))
    if step is not None:
        token = request.cookies.get(SECOND_STEP_COOKIE)
        browser = factor._browser(request)
        outcome = await run_in_threadpool(login._sign_in(c).second_factor_passkey, token, result.methods, browser,
                                          pending)  # fmt: skip
        if not isinstance(outcome, SignedIn):
            response = error_page("interaction_expired", factor.START_AGAIN, 400)
            clear_cookie(response, SECOND_STEP_COOKIE)
            return response
        return login.signed_in(outcome, pending, step.next_path or "/account")
    assert pending is not None
    rotated = await run_in_threadpool(
        factor.stepped_up, c, session_cookie(request) or "", result.methods, pending, ip, "passkey"
    )
    if rotated is None:
        return error_page("invalid_request", factor.START_AGAIN, 400)
    cookie, fresh = rotated
    resumed = see_other(login.resume_url(pending.id))
    set_cookie(resumed, SESSION_COOKIE, cookie, int(fresh.absolute_expires_at - c.clock.now()))
    return resumed


def _factor_again(
    c: Services,
    user_id: str,
    step: SecondStep | None,
    session: LoginSession | None,
    pending: PendingAuthorization | None,
    error: str,
) -> Response:
    if step is not None:
        csrf = session_token(step.csrf_key, factor.STEP_PURPOSE)
        interaction = ""
    else:
        assert session is not None and pending is not None
        csrf = session_token(session.csrf_secret, factor._step_up_purpose(pending.id))
        interaction = pending.id
    return factor._challenge(c, user_id=user_id, csrf=csrf, pending=pending, interaction=interaction, recovery=False,
                             error=error, status=400)  # fmt: skip


# -- the account page ------------------------------------------------------------------------
@page
async def register_options(request: Request) -> Response:
    c = services_of(request)
    form = await request.form()
    if (refused := _options_refused(c, request)) is not None:
        return refused
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
    ip = client_ip(request)
    return await _start(
        lambda: c.passkeys.registration_options(user.id, user.username, user.name or "", binding=session.sid, ip=ip)
    )


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
        return await run_in_threadpool(lambda: view(c, session, error=message, status=400))
    return see_other("/account?done=passkey_added#passkeys")


@action
async def rename(c: Services, request: Request, form: Any, session: LoginSession) -> Response:
    passkey_id, name = one(form, "passkey_id", 64), one(form, "name", 200)
    done = await run_in_threadpool(lambda: c.passkeys.rename(session.user_id, passkey_id, name, ip=client_ip(request)))
    if not done:
        return await run_in_threadpool(
            lambda: view(c, session, error="Give the passkey a name (letters, digits, spaces).", status=400)
        )
    return see_other("/account?done=passkey_renamed#passkeys")


@action
async def remove(c: Services, request: Request, form: Any, session: LoginSession) -> Response:
    """As with the other sign-in methods: the person's other sessions end and this one's cookie rotates."""
    if not is_fresh(c, session):
        return see_other(REAUTH_URL)
    passkey_id, ip = one(form, "passkey_id", 64), client_ip(request)

    def removing() -> Response:
        user = c.directory.store.get(session.user_id)
        if user is None:
            return see_other("/login?next=/account")
        mine = [p.id for p in c.passkeys.list(user.id)]
        if passkey_id not in mine:
            return see_other("/account#passkeys")
        last = mine == [passkey_id] and not c.factors.confirmed(user.id)
        if last and c.factors.policy.offered and c.factors.required_for(user.flags):
            return view(c, session, error=LAST_REQUIRED, status=400)
        c.passkeys.remove(user.id, passkey_id, ip=ip)
        c.login_sessions.end_all_for_user(user.id, actor=user.id, reason="passkey removed", except_sid=session.sid)
        rotated = c.login_sessions.rotate(session_cookie(request) or "")  # ASVS V7.2.4: privilege change
        if rotated is None:
            return see_other("/login?next=/account")
        cookie, fresh = rotated
        response = see_other("/account?done=passkey_removed#passkeys")
        set_cookie(response, SESSION_COOKIE, cookie, int(fresh.absolute_expires_at - c.clock.now()))
        return response

    return await run_in_threadpool(removing)


ROUTES: tuple[Route, ...] = (
    Route("/login/passkey/options", signin_options, methods=["POST"]),
    Route("/login/passkey", signin_submit, methods=["POST"]),
    Route("/login/factor/passkey/options", factor_options, methods=["POST"]),
    Route("/login/factor/passkey", factor_submit, methods=["POST"]),
    Route("/account/passkeys/options", register_options, methods=["POST"]),
    Route("/account/passkeys/add", register_submit, methods=["POST"]),
    Route("/account/passkeys/rename", rename, methods=["POST"]),
    Route("/account/passkeys/remove", remove, methods=["POST"]),
)
