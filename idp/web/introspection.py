"""``POST /introspect`` (RFC 7662): authenticate the caller, then :mod:`idp.oauth.introspection` answers.

The caller must authenticate as a confidential client (RFC 7662 §2.1; ASVS V10.4.10).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.clients.origins import check_client_origin, own_origin
from idp.errors import InvalidRequest
from idp.nonblocking import run_cached
from idp.oauth.client_auth import authenticate_client
from idp.oauth.forms import read_form, single
from idp.oauth.introspection import introspection_of
from idp.oauth.responses import NO_STORE, json_response
from idp.services import services_of


async def introspection(request: Request) -> Response:
    c = services_of(request)
    form = single(await read_form(request))
    # RFC 7662 §2.1: the caller must be authorized; public clients are refused.
    caller = await authenticate_client(request, c, endpoint="introspection", form=form)
    check_client_origin(request.headers.getlist("origin"), caller, own_origin(c.settings.issuer))
    token = form.get("token")
    if not token:
        raise InvalidRequest("the token parameter is required")  # RFC 7662 §2.1
    body = await run_cached(introspection_of(c).introspect, caller, token, form.get("token_type_hint"))
    return json_response(body, 200, NO_STORE)


ROUTES: tuple[Route, ...] = (Route("/introspect", introspection, methods=["POST"]),)
