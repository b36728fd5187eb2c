"""/account: sessions, authorized apps, password. Every POST: Origin check + session-bound CSRF token, then 303."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.interaction import SESSION_COOKIE
from idp.peer import client_ip
from idp.services import Services, services_of
from idp.sessions.account import PasswordChangeError
from idp.sessions.csrf import check_session_token, session_token
from idp.sessions.factors.model import Factor
from idp.sessions.store import LoginSession
from idp.web.pages.consent import describe_scopes
from idp.web.pages.forms import clear_cookie, one, page, same_origin, see_other, session_cookie, set_cookie
from idp.web.templating import error_page, render

PURPOSE = "account"
NOTICES = {
    "session": "That session has been signed out.",
    "app": "Access removed. The app will have to ask you again.",
    "password": "Password changed. Your other sessions were signed out.",
    "passkey_added": "Passkey added. You can use it to sign in without your password.",
    "passkey_renamed": "Passkey renamed.",
    "passkey_removed": "Passkey removed. It can no longer be used to sign in; your other sessions were signed out.",
    "totp": "Two-step verification is on. You'll be asked for a code when you sign in.",
    "recovery": "New recovery codes are ready. The old ones no longer work.",
    "factor": "Sign-in method removed. Your other sessions were signed out.",
}
KIND_LABELS = {"totp": "Authenticator app", "passkey": "Passkey"}


def ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for size, unit in ((86_400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


REAUTH_URL = "/login?reauth=1&next=/account"  # sign in again, then back to the account page


def is_fresh(c: Services, session: LoginSession) -> bool:
    """Signed in recently enough for a sensitive change (the last authentication, not the last visit)."""
    return c.clock.now() - session.auth_time <= c.settings.reauth_seconds


def _passkeys(c: Services, user_id: str, now: float) -> list[dict[str, Any]]:
    return [
        {"id": p.id, "name": p.name, "added": ago(now - p.created_at), "synced": p.backup_eligible}
        | {"used": ago(now - p.last_used_at) if p.last_used_at is not None else ""}
        for p in c.passkeys.list(user_id)
    ]


def view(c: Services, session: LoginSession, *, notice: str = "", error: str = "", status: int = 200) -> Response:
    """The account page. Blocking (SQL)."""
    user = c.directory.store.get(session.user_id)
    now = c.clock.now()
    devices = [
        {"sid": d.sid, "device": d.device, "ip": d.ip or "unknown", "seen": ago(now - d.last_seen_at)}
        | {"current": d.current}
        for d in c.account.devices(session.user_id, session.sid)
    ]
    apps = [
        {"client_id": a.client_id, "name": a.name, "scopes": describe_scopes(a.scopes), "since": ago(now - a.since)}
        for a in c.account.apps(session.user_id)
    ]
    context: dict[str, Any] = {
        "title": "Your account",
        "username": user.username if user else "",
        "display_name": (user.name or user.username) if user else "",
        "email": (user.email or "") if user else "",
        "devices": devices,
        "apps": apps,
        "passkeys_enabled": c.settings.passkeys_enabled,
        "passkeys": _passkeys(c, session.user_id, now) if c.settings.passkeys_enabled else [],
        "fresh": is_fresh(c, session),
        "csrf": session_token(session.csrf_secret, PURPOSE),
        "notice": notice,
        "error": error,
    } | _factors(c, session, now)
    return render("account.html", context, status)


def _factors(c: Services, session: LoginSession, now: float) -> dict[str, Any]:
    user = c.directory.store.get(session.user_id)
    factors = c.factors.confirmed(session.user_id) if c.factors.policy.offered else []
    used = session.factor_times()
    return {
        "factors_offered": c.factors.policy.offered,
        "factors_required": c.factors.required_for(user.flags if user else []),
        "factors": [_factor_row(f, now) for f in factors],
        "has_totp": any(f.kind == "totp" for f in factors),
        "recovery_left": c.factors.recovery_left(session.user_id) if factors else 0,
        "signed_in_with": " and ".join(dict.fromkeys(label for m in used if (label := METHOD_LABELS.get(m, m)))),
    }


def _factor_row(f: Factor, now: float) -> dict[str, str]:
    used = ago(now - f.last_used_at) if f.last_used_at else "never"
    return {"id": f.id, "name": f.name, "kind": KIND_LABELS.get(f.kind, f.kind), "added": ago(now - f.created_at),
            "used": used}  # fmt: skip


METHOD_LABELS = {"pwd": "password", "otp": "a one-time code", "hwk": "a passkey", "swk": "a passkey", "user": ""}


@page
async def account_page(request: Request) -> Response:
    c = services_of(request)
    session = await run_in_threadpool(c.login_sessions.current, session_cookie(request))
    if session is None:
        return see_other("/login?next=/account")
    notice = NOTICES.get(one(request.query_params, "done", 16), "")
    return await run_in_threadpool(view, c, session, notice=notice)


Action = Callable[[Services, Request, Any, LoginSession], Awaitable[Response]]


def action(handler: Action) -> Callable[[Request], Awaitable[Response]]:
    """Signed-in POST: Origin and CSRF token first; nothing changes without both."""

    @page
    async def wrapped(request: Request) -> Response:
        c = services_of(request)
        form = await request.form()
        session = await run_in_threadpool(c.login_sessions.current, session_cookie(request))
        if not same_origin(request, c.settings.issuer):
            return error_page("invalid_request", "This form was sent from another site and was not accepted.", 400)
        if session is None:
            return see_other("/login?next=/account")
        if not check_session_token(session.csrf_secret, PURPOSE, one(form, "csrf", 200)):
            return error_page("invalid_request", "This form has expired. Reload the page and try again.", 400)
        return await handler(c, request, form, session)

    return wrapped


@action
async def end_session(c: Services, request: Request, form: Any, session: LoginSession) -> Response:
    sid = one(form, "sid", 64)
    if sid == session.sid:
        return await _sign_out_here(c, request)
    await run_in_threadpool(c.account.end_session, session.user_id, sid)
    return see_other("/account?done=session")


async def _sign_out_here(c: Services, request: Request) -> Response:
    await run_in_threadpool(c.login_sessions.end, session_cookie(request), actor="user", reason="signed out")
    response = see_other("/logout/done")
    clear_cookie(response, SESSION_COOKIE)
    return response


@action
async def everywhere(c: Services, request: Request, form: Any, session: LoginSession) -> Response:
    await run_in_threadpool(c.account.sign_out_everywhere, session.user_id)
    response = see_other("/logout/done?everywhere=1")
    clear_cookie(response, SESSION_COOKIE)
    return response


@action
async def revoke_app(c: Services, request: Request, form: Any, session: LoginSession) -> Response:
    await run_in_threadpool(c.account.revoke_app, session.user_id, one(form, "client_id", 64))
    return see_other("/account?done=app")


@action
async def change_password(c: Services, request: Request, form: Any, session: LoginSession) -> Response:
    try:
        cookie, fresh = await run_in_threadpool(
            c.account.change_password,
            session,
            session_cookie(request) or "",
            one(form, "current_password", 1024),
            one(form, "new_password", 1024),
            one(form, "confirm_password", 1024),
            ip=client_ip(request),
        )
    except PasswordChangeError as exc:
        response = await run_in_threadpool(view, c, session, error=str(exc), status=429 if exc.retry_after else 400)
        if exc.retry_after:
            response.headers["retry-after"] = str(exc.retry_after)
        return response
    response = see_other("/account?done=password")
    set_cookie(response, SESSION_COOKIE, cookie, int(fresh.absolute_expires_at - c.clock.now()))
    return response


ROUTES: tuple[Route, ...] = (
    Route("/account", account_page, methods=["GET"]),
    Route("/account/sessions/end", end_session, methods=["POST"]),
    Route("/account/sessions/end-all", everywhere, methods=["POST"]),
    Route("/account/apps/revoke", revoke_app, methods=["POST"]),
    Route("/account/password", change_password, methods=["POST"]),
)
