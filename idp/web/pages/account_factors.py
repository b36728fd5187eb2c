"""/account, the second-factor part: set up an authenticator app, new recovery codes, remove a factor.

Each POST goes through :func:`idp.web.pages.account.action` (Origin check and the session-bound CSRF token).
Setting up an authenticator app needs a recent sign-in, as adding a passkey does: an old or stolen session
must not add a factor of its own. Turning on the person's first factor steps the session up (``otp`` in its
``amr``, a new cookie value); a further factor does not (only passing an existing one does). New recovery
codes and removing a factor first ask for the password again, as a password change does, and removing a
factor signs out the person's other sessions and rotates this one's cookie, as a password change does.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.interaction import SESSION_COOKIE
from idp.peer import client_ip
from idp.services import Services
from idp.sessions.account import PasswordChangeError
from idp.sessions.csrf import session_token
from idp.sessions.factors.service import FactorError, TotpEnrolment
from idp.sessions.store import LoginSession
from idp.web.pages.account import PURPOSE, REAUTH_URL, action, is_fresh, view
from idp.web.pages.enrolment import enrol_context, recovery_page
from idp.web.pages.forms import one, see_other, session_cookie, set_cookie
from idp.web.templating import render

LAST_REQUIRED = "Two-step verification is required for your account. Set up another method before removing this one."


def _enrol(session: LoginSession, enrolment: TotpEnrolment, error: str = "", status: int = 200) -> Response:
    csrf = session_token(session.csrf_secret, PURPOSE)
    context = enrol_context(enrolment, csrf=csrf, action="/account/totp/confirm", grace=False, error=error)
    return render("enrol.html", context, status)


def _refused(c: Services, session: LoginSession, exc: PasswordChangeError | FactorError) -> Response:
    response = view(c, session, error=str(exc), status=429 if exc.retry_after else 400)
    if exc.retry_after:
        response.headers["retry-after"] = str(exc.retry_after)
    return response


def _cookie(c: Services, response: Response, cookie: str, session: LoginSession) -> Response:
    set_cookie(response, SESSION_COOKIE, cookie, int(session.absolute_expires_at - c.clock.now()))
    return response


@action
async def totp_start(c: Services, request: Request, form: Any, session: LoginSession) -> Response:
    if not is_fresh(c, session):
        return see_other(REAUTH_URL)

    def start() -> Response:
        user = c.directory.store.get(session.user_id)
        try:
            return _enrol(session, c.factors.start_totp(session.user_id, user.username if user else ""))
        except FactorError as exc:
            return _refused(c, session, exc)

    return await run_in_threadpool(start)


@action
async def totp_confirm(c: Services, request: Request, form: Any, session: LoginSession) -> Response:
    if not is_fresh(c, session):
        return see_other(REAUTH_URL)
    factor_id, code, ip = one(form, "factor_id", 64), one(form, "code", 64), client_ip(request)

    def confirm() -> Response:
        had_factor = c.factors.has_second_factor(session.user_id)
        try:
            c.factors.confirm_totp(session.user_id, factor_id, code, ip=ip)
        except FactorError as exc:
            user = c.directory.store.get(session.user_id)
            enrolment = c.factors.pending_totp(session.user_id, factor_id, user.username if user else "")
            if enrolment is None:
                return _refused(c, session, exc)
            return _enrol(session, enrolment, str(exc), 429 if exc.retry_after else 400)
        if had_factor:  # a new factor proves nothing about this session: passing an existing one would
            return see_other("/account?done=totp")
        rotated = c.login_sessions.add_factor(session_cookie(request) or "", "otp")  # ASVS V7.2.4: new id
        if rotated is None:
            return see_other("/login?next=/account")
        cookie, fresh = rotated
        if c.factors.recovery_left(session.user_id) == 0:  # the first factor: codes to fall back on, shown once
            codes = c.factors.new_recovery_codes(session.user_id)
            return _cookie(c, recovery_page(codes, "/account?done=totp"), cookie, fresh)
        return _cookie(c, see_other("/account?done=totp"), cookie, fresh)

    return await run_in_threadpool(confirm)


@action
async def new_recovery_codes(c: Services, request: Request, form: Any, session: LoginSession) -> Response:
    password, ip = one(form, "current_password", 1024), client_ip(request)

    def regenerate() -> Response:
        try:
            c.account.reauthenticate(session, password, ip=ip)
        except PasswordChangeError as exc:
            return _refused(c, session, exc)
        if not c.factors.confirmed(session.user_id):
            return see_other("/account")
        return recovery_page(c.factors.new_recovery_codes(session.user_id), "/account?done=recovery")

    return await run_in_threadpool(regenerate)


@action
async def remove_factor(c: Services, request: Request, form: Any, session: LoginSession) -> Response:
    factor_id, password, ip = one(form, "factor_id", 64), one(form, "current_password", 1024), client_ip(request)

    def remove() -> Response:
        try:
            user = c.account.reauthenticate(session, password, ip=ip)
        except PasswordChangeError as exc:
            return _refused(c, session, exc)
        mine = [f.id for f in c.factors.confirmed(user.id)]
        if factor_id not in mine:
            return see_other("/account")
        others = len(mine) - 1 + any(has(user.id) for has in c.factors.other_kinds)  # a passkey counts too
        if not others and c.factors.required_for(user.flags):
            return view(c, session, error=LAST_REQUIRED, status=400)
        c.factors.remove(user.id, factor_id)
        c.login_sessions.end_all_for_user(user.id, actor=user.id, reason="second factor removed",
                                          except_sid=session.sid)  # fmt: skip
        rotated = c.login_sessions.rotate(session_cookie(request) or "")  # ASVS V7.2.4: privilege change
        if rotated is None:
            return see_other("/login?next=/account")
        return _cookie(c, see_other("/account?done=factor"), *rotated)

    return await run_in_threadpool(remove)


ROUTES: tuple[Route, ...] = (
    Route("/account/totp/start", totp_start, methods=["POST"]),
    Route("/account/totp/confirm", totp_confirm, methods=["POST"]),
    Route("/account/recovery/new", new_recovery_codes, methods=["POST"]),
    Route("/account/factors/remove", remove_factor, methods=["POST"]),
)
