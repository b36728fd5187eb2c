"""GET/POST /authorize and GET /authorize/resume: parse, call :class:`idp.oauth.authorize.Authorizer`, render
its outcome (a redirect back to the client, or our error page when there is no safe place to redirect)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.errors import InvalidRequest, OAuthError
from idp.interaction import SESSION_COOKIE
from idp.oauth.authorize import Authorizer, Outcome
from idp.oauth.forms import is_form, parse_pairs
from idp.oauth.responses import NO_STORE
from idp.peer import client_ip
from idp.services import services_of
from idp.web.templating import error_page


def _render(outcome: Outcome) -> Response:
    if outcome.location is None:
        # RFC 6749 §4.1.2.1: unknown client or redirect URI: our page, status 400, no Location.
        return error_page(outcome.error, outcome.message, outcome.status, outcome.headers or None)
    return Response(status_code=outcome.status, headers={"location": outcome.location, **NO_STORE})


async def authorize(request: Request) -> Response:
    post = request.method == "POST"  # OIDC Core §3.1.2.1: GET and POST are both supported
    try:
        if post and not is_form(request):
            raise InvalidRequest("the request body must be application/x-www-form-urlencoded")
        pairs = parse_pairs(await request.body() if post else request.url.query)
    except OAuthError as exc:
        return error_page("invalid_request", exc.description, 400)
    cookie = request.cookies.get(SESSION_COOKIE)
    authorizer = Authorizer(services_of(request))
    # RFC 9700 §4.12: answer a POST with 303 so the browser does not re-POST the parameters elsewhere.
    outcome = await run_in_threadpool(
        authorizer.start, pairs, cookie, ip=client_ip(request), status=303 if post else 302
    )
    return _render(outcome)


async def resume(request: Request) -> Response:
    interaction_id = request.query_params.get("interaction", "")
    authorizer = Authorizer(services_of(request))
    outcome = await run_in_threadpool(authorizer.resume, interaction_id, request.cookies.get(SESSION_COOKIE))
    return _render(outcome)


ROUTES: tuple[Route, ...] = (
    Route("/authorize", authorize, methods=["GET", "POST"]),
    Route("/authorize/resume", resume, methods=["GET"]),
)
