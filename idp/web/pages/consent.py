"""GET/POST /consent: ask once per user, client and scopes (ASVS V10.7.1-V10.7.2).

A public client whose redirect URI is a loopback port or a private-use scheme is
asked about once per login session and exact redirect URI (RFC 8252 §8.6): a
third-party one on this same page, a first-party one on a "continue" variant
of it that names where the sign-in goes. Allow records what the page showed and
nothing else: the scopes (third party) and the approved redirect URI (public).
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.interaction import PendingAuthorization
from idp.services import Services, services_of
from idp.sessions.consents import needs_session_approval
from idp.sessions.csrf import check_session_token, session_token
from idp.sessions.store import LoginSession
from idp.web.pages.forms import csp_for, one, page, same_origin, see_other, session_cookie
from idp.web.pages.login import EXPIRED_INTERACTION, resume_url
from idp.web.templating import error_page, render

SCOPE_WORDS = {
    "openid": "Know who you are when you sign in",
    "profile": "See your name and basic profile",
    "email": "See your email address",
    "address": "See your postal address",
    "phone": "See your phone number",
    "offline_access": "Stay connected while you are not using it",
}


def describe_scopes(scopes: list[str] | tuple[str, ...]) -> list[dict[str, str]]:
    return [{"scope": s, "text": SCOPE_WORDS.get(s, f"Use the “{s}” permission")} for s in scopes]


def consent_purpose(interaction_id: str) -> str:
    return f"consent:{interaction_id}"


def _load(
    c: Services, request: Request, interaction_id: str
) -> tuple[PendingAuthorization | None, LoginSession | None]:
    pending = c.interactions.get(interaction_id) if interaction_id else None
    return pending, c.login_sessions.current(session_cookie(request))


def _check(pending: PendingAuthorization | None, session: LoginSession | None, interaction_id: str) -> Response | None:
    if pending is None:
        return error_page("interaction_expired", EXPIRED_INTERACTION, 400)
    expected = pending.login_sid or pending.extra.get("sid")
    if session is None or (expected and expected != session.sid):
        # The session that started this request must finish it (authorize/resume checks the same).
        return see_other(f"/login?interaction={interaction_id}")
    return None


@page
async def consent_page(request: Request) -> Response:
    c = services_of(request)
    interaction_id = one(request.query_params, "interaction", 64)
    pending, session = await run_in_threadpool(_load, c, request, interaction_id)
    problem = _check(pending, session, interaction_id)
    if problem is not None:
        return problem
    assert pending is not None and session is not None
    client = await run_in_threadpool(c.clients.get_active, pending.client_id)
    if client is None:
        return error_page("invalid_client", "This application is not known or has been disabled.", 400)
    user = await run_in_threadpool(c.directory.store.get, session.user_id)
    redirect_uri = pending.params.get("redirect_uri", "")
    continue_only = client.first_party  # reached only for the redirect approval (RFC 8252 §8.6)
    context: dict[str, Any] = {
        "title": f"Continue to {client.name}?" if continue_only else f"Allow {client.name}?",
        "continue_only": continue_only,
        "redirect_uri": redirect_uri if needs_session_approval(client, redirect_uri) else "",
        "client_name": client.name,
        "scopes": describe_scopes(pending.scopes),
        "offline": "offline_access" in pending.scopes,
        "username": user.username if user else "",
        "interaction": pending.id,
        "csrf": session_token(session.csrf_secret, consent_purpose(pending.id)),
    }
    return render("consent.html", context, headers=csp_for(pending))


@page
async def consent_submit(request: Request) -> Response:
    c = services_of(request)
    form = await request.form()
    interaction_id = one(form, "interaction", 64)
    decision = one(form, "decision", 16)
    pending, session = await run_in_threadpool(_load, c, request, interaction_id)
    if not same_origin(request, c.settings.issuer):
        return error_page("invalid_request", "This form was sent from another site and was not accepted.", 400)
    if session is not None and not check_session_token(
        session.csrf_secret, consent_purpose(interaction_id), one(form, "csrf", 200)
    ):
        return error_page("invalid_request", "This form has expired. Go back and try again.", 400)
    problem = _check(pending, session, interaction_id)
    if problem is not None:
        return problem
    assert pending is not None and session is not None
    if decision not in ("allow", "deny"):
        return error_page("invalid_request", "Choose Allow or Deny.", 400)

    def decide() -> Response | None:
        client = c.clients.get_active(pending.client_id)
        if client is None:
            return error_page("invalid_client", "This application is not known or has been disabled.", 400)
        redirect_uri = pending.params.get("redirect_uri", "")
        if decision == "allow" and not client.first_party:
            c.consents.grant(session.user_id, pending.client_id, pending.scopes)  # what the page showed
            c.audit.record(
                "consent.granted", actor=session.user_id, subject=session.user_id,
                client_id=pending.client_id, scope=" ".join(pending.scopes),
            )  # fmt: skip
        if decision == "allow" and needs_session_approval(client, redirect_uri):
            c.approvals.approve(session.sid, pending.client_id, redirect_uri)  # RFC 8252 §8.6: this URI only
        pending.consent = "granted" if decision == "allow" else "denied"
        pending.login_sid = pending.login_sid or session.sid
        c.interactions.save(pending)
        return None

    refused = await run_in_threadpool(decide)
    return refused or see_other(resume_url(pending.id))


ROUTES: tuple[Route, ...] = (
    Route("/consent", consent_page, methods=["GET"]),
    Route("/consent", consent_submit, methods=["POST"]),
)
