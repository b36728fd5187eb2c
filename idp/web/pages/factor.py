"""The second step of a sign-in, and step-up: GET/POST /login/factor, GET/POST /login/enrol.

``/login/factor`` asks for a code from an authenticator app or a recovery code. During a sign-in the
second-step cookie names who passed the password (:mod:`idp.sessions.second_step`); without it, a signed-in
person sent here by /authorize for a stronger sign-in (``acr_values``, the policy) steps up the session they
have. ``/login/enrol`` is the grace enrolment: the policy requires a factor this person does not have yet.
Every POST: the Origin check and a CSRF token bound to the second step (or the session), as elsewhere.
"""

from __future__ import annotations

import functools
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.interaction import SESSION_COOKIE, PendingAuthorization
from idp.peer import client_ip
from idp.services import Services, services_of
from idp.sessions.csrf import check_session_token, session_token
from idp.sessions.factors.service import FactorError, Rejected, Throttled, TotpEnrolment, Verified
from idp.sessions.second_step import SecondStep
from idp.sessions.signin import Browser, Expired, SignedIn
from idp.sessions.store import LoginSession
from idp.web.pages.enrolment import enrol_context, recovery_page
from idp.web.pages.forms import (
    SECOND_STEP_COOKIE,
    clear_cookie,
    one,
    page,
    same_origin,
    see_other,
    session_cookie,
    set_cookie,
    user_agent,
)
from idp.web.pages.login import EXPIRED_INTERACTION, TOO_MANY, _sign_in, resume_url, session_cookies, signed_in
from idp.web.templating import error_page, render

WRONG_CODE = "That code didn't work. Check it and try again."
START_AGAIN = "This sign-in has expired. Please sign in again."
STEP_PURPOSE = "second-factor"
FOREIGN = "This form was sent from another site and was not accepted."


def _step_up_purpose(interaction_id: str) -> str:
    return f"step-up:{interaction_id}"


def _username(c: Services, user_id: str) -> str:
    user = c.directory.store.get(user_id)
    return user.username if user else ""


def _challenge(
    c: Services,
    *,
    user_id: str,
    csrf: str,
    pending: PendingAuthorization | None,
    interaction: str,
    recovery: bool,
    error: str = "",
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    client = c.clients.get(pending.client_id) if pending else None
    context: dict[str, Any] = {
        "title": "Two-step verification",
        "csrf": csrf,
        "interaction": interaction,
        "account": _username(c, user_id),
        "client_name": client.name if client else None,
        "recovery": recovery,
        "passkey": c.settings.passkeys_enabled and c.passkeys.has_any(user_id),  # offered beside the codes
        "totp": bool(c.factors.confirmed(user_id, "totp")),
        "has_recovery": c.factors.recovery_left(user_id) > 0,
        "error": error,
    }
    return render("factor.html", context, status, headers)


def _step(c: Services, request: Request) -> SecondStep | None:
    return c.second_steps.get(request.cookies.get(SECOND_STEP_COOKIE))


def _pending(c: Services, interaction_id: str) -> PendingAuthorization | None:
    return c.interactions.get(interaction_id) if interaction_id else None


def _browser(request: Request) -> Browser:
    return Browser(client_ip(request), user_agent(request), session_cookie(request))


@page
async def factor_page(request: Request) -> Response:
    c = services_of(request)
    recovery = one(request.query_params, "recovery", 8) == "1"
    step = await run_in_threadpool(_step, c, request)
    if step is not None and not step.enrol:
        pending = await run_in_threadpool(_pending, c, step.interaction)
        csrf = session_token(step.csrf_key, STEP_PURPOSE)
        return await run_in_threadpool(
            functools.partial(
                _challenge, c, user_id=step.user_id, csrf=csrf, pending=pending, interaction="", recovery=recovery
            )
        )
    interaction_id = one(request.query_params, "interaction", 64)
    session = await run_in_threadpool(c.login_sessions.current, session_cookie(request))
    pending = await run_in_threadpool(_pending, c, interaction_id)
    if session is None or pending is None:
        return see_other("/login")  # nothing to verify: start at the beginning
    csrf = session_token(session.csrf_secret, _step_up_purpose(pending.id))
    return await run_in_threadpool(
        lambda: _challenge(
            c, user_id=session.user_id, csrf=csrf, pending=pending, interaction=pending.id, recovery=recovery
        )
    )


@page
async def factor_submit(request: Request) -> Response:
    c = services_of(request)
    form = await request.form()
    code = one(form, "code", 64)
    recovery = not code.replace(" ", "").isdigit() and bool(code)
    if not same_origin(request, c.settings.issuer):
        return error_page("invalid_request", FOREIGN, 400)
    token = request.cookies.get(SECOND_STEP_COOKIE)
    step = await run_in_threadpool(c.second_steps.get, token)
    if step is not None and not step.enrol:
        return await _second_step(c, request, token, step, one(form, "csrf", 200), code, recovery)
    interaction_id = one(form, "interaction", 64)
    session = await run_in_threadpool(c.login_sessions.current, session_cookie(request))
    if session is None or not interaction_id:
        return error_page("invalid_request", START_AGAIN, 400)
    if not check_session_token(session.csrf_secret, _step_up_purpose(interaction_id), one(form, "csrf", 200)):
        return error_page("invalid_request", "This form has expired. Reload the page and try again.", 400)
    pending = await run_in_threadpool(_pending, c, interaction_id)
    if pending is None:
        return error_page("interaction_expired", EXPIRED_INTERACTION, 400)
    return await _step_up(c, request, session, pending, code, recovery)


async def _second_step(
    c: Services, request: Request, token: str | None, step: SecondStep, csrf: str, code: str, recovery: bool
) -> Response:
    if not check_session_token(step.csrf_key, STEP_PURPOSE, csrf):  # nothing is checked without a valid token
        return error_page("invalid_request", "This form has expired. Reload the page and try again.", 400)
    pending = await run_in_threadpool(_pending, c, step.interaction)
    if step.interaction and pending is None:
        return error_page("interaction_expired", EXPIRED_INTERACTION, 400)
    outcome = await run_in_threadpool(_sign_in(c).second_factor, token, code, _browser(request), pending)
    if isinstance(outcome, SignedIn):
        return signed_in(outcome, pending, step.next_path or "/account")
    if isinstance(outcome, Expired):
        response = error_page("interaction_expired", START_AGAIN, 400)
        clear_cookie(response, SECOND_STEP_COOKIE)
        return response
    status, headers, error = _refusal(outcome)
    csrf_token = session_token(step.csrf_key, STEP_PURPOSE)
    return await run_in_threadpool(
        lambda: _challenge(
            c,
            user_id=step.user_id,
            csrf=csrf_token,
            pending=pending,
            interaction="",
            recovery=recovery,
            error=error,
            status=status,
            headers=headers,
        )
    )


def _refusal(outcome: Rejected | Throttled) -> tuple[int, dict[str, str] | None, str]:
    if isinstance(outcome, Throttled):
        return 429, {"retry-after": str(outcome.retry_after)}, TOO_MANY
    if outcome.retry_after:
        return 429, {"retry-after": str(outcome.retry_after)}, TOO_MANY
    return 400, None, WRONG_CODE


def stepped_up(
    c: Services, cookie: str, methods: tuple[str, ...], pending: PendingAuthorization, ip: str, kind: str
) -> tuple[str, LoginSession] | None:
    """The session gains ``methods`` (its cookie rotates at each, ASVS V7.2.4) and finishes ``pending``; audited.
    None when the session ended meanwhile."""
    rotated = None
    for method in methods:
        rotated = c.login_sessions.add_factor(cookie, method)
        if rotated is None:
            return None
        cookie = rotated[0]
    if rotated is None:
        return None
    fresh = rotated[1]
    pending.login_sid, pending.login_at = fresh.sid, fresh.auth_time  # this session finishes the request
    c.interactions.save(pending)
    c.audit.record("login.step_up", actor=fresh.user_id, subject=fresh.user_id, ip=ip, sid=fresh.sid,
                   amr=list(fresh.amr), kind=kind)  # fmt: skip
    return rotated


async def _step_up(
    c: Services, request: Request, session: LoginSession, pending: PendingAuthorization, code: str, recovery: bool
) -> Response:
    ip = client_ip(request)
    outcome = await run_in_threadpool(lambda: c.factors.verify(session.user_id, code, ip=ip))
    if isinstance(outcome, Verified):
        rotated = await run_in_threadpool(
            stepped_up, c, session_cookie(request) or "", (outcome.amr,), pending, ip, outcome.kind
        )
        if rotated is None:
            return error_page("invalid_request", START_AGAIN, 400)
        cookie, fresh = rotated
        response = see_other(resume_url(pending.id))
        set_cookie(response, SESSION_COOKIE, cookie, int(fresh.absolute_expires_at - c.clock.now()))
        return response
    status, headers, error = _refusal(outcome)
    csrf = session_token(session.csrf_secret, _step_up_purpose(pending.id))
    return await run_in_threadpool(
        lambda: _challenge(
            c,
            user_id=session.user_id,
            csrf=csrf,
            pending=pending,
            interaction=pending.id,
            recovery=recovery,
            error=error,
            status=status,
            headers=headers,
        )
    )


# -- grace enrolment ------------------------------------------------------------------------


def _grace_enrolment(c: Services, token: str, step: SecondStep) -> TotpEnrolment | None:
    account = _username(c, step.user_id)
    enrolment = c.factors.pending_totp(step.user_id, step.enrol_factor_id, account) if step.enrol_factor_id else None
    if enrolment is None:
        enrolment = c.factors.start_totp(step.user_id, account)
        step.enrol_factor_id = enrolment.factor_id
        c.second_steps.save(token, step)
    return enrolment


@page
async def enrol_page(request: Request) -> Response:
    c = services_of(request)
    token = request.cookies.get(SECOND_STEP_COOKIE)
    step = await run_in_threadpool(c.second_steps.get, token)
    if step is None or not step.enrol or token is None:
        return see_other("/login")
    enrolment = await run_in_threadpool(_grace_enrolment, c, token, step)
    if enrolment is None:
        return see_other("/login")
    csrf = session_token(step.csrf_key, STEP_PURPOSE)
    return render("enrol.html", enrol_context(enrolment, csrf=csrf, action="/login/enrol", grace=True))


@page
async def enrol_submit(request: Request) -> Response:
    c = services_of(request)
    form = await request.form()
    if not same_origin(request, c.settings.issuer):
        return error_page("invalid_request", FOREIGN, 400)
    token = request.cookies.get(SECOND_STEP_COOKIE)
    step = await run_in_threadpool(c.second_steps.get, token)
    if step is None or not step.enrol or token is None:
        return error_page("interaction_expired", START_AGAIN, 400)
    if not check_session_token(step.csrf_key, STEP_PURPOSE, one(form, "csrf", 200)):
        return error_page("invalid_request", "This form has expired. Reload the page and try again.", 400)
    ip = client_ip(request)
    try:
        await run_in_threadpool(
            lambda: c.factors.confirm_totp(step.user_id, step.enrol_factor_id, one(form, "code", 64), ip=ip)
        )
    except FactorError as exc:
        enrolment = await run_in_threadpool(_grace_enrolment, c, token, step)
        if enrolment is None:
            return error_page("interaction_expired", START_AGAIN, 400)
        csrf = session_token(step.csrf_key, STEP_PURPOSE)
        context = enrol_context(enrolment, csrf=csrf, action="/login/enrol", grace=True, error=str(exc))
        headers = {"retry-after": str(exc.retry_after)} if exc.retry_after else None
        return render("enrol.html", context, 429 if exc.retry_after else 400, headers)
    pending = await run_in_threadpool(_pending, c, step.interaction)
    outcome = await run_in_threadpool(_sign_in(c).enrolled, token, "", _browser(request), pending)
    if not isinstance(outcome, SignedIn):
        return error_page("interaction_expired", START_AGAIN, 400)
    codes = await run_in_threadpool(c.factors.new_recovery_codes, step.user_id)
    response = recovery_page(codes, resume_url(pending.id) if pending else (step.next_path or "/account"))
    session_cookies(response, outcome)  # signed in on the page that shows the codes, once
    return response


ROUTES: tuple[Route, ...] = (
    Route("/login/factor", factor_page, methods=["GET"]),
    Route("/login/factor", factor_submit, methods=["POST"]),
    Route("/login/enrol", enrol_page, methods=["GET"]),
    Route("/login/enrol", enrol_submit, methods=["POST"]),
)
