"""``POST /revoke`` (RFC 7009): authenticate the caller, then :mod:`idp.oauth.revocation` decides.

The caller authenticates as at the token endpoint (public clients identify with ``client_id``:
RFC 7009 §2.1 lets them revoke their own tokens). The answer is 200 whatever the token was (§2.2).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.clients.origins import check_client_origin, own_origin
from idp.errors import InvalidRequest
from idp.oauth.client_auth import authenticate_client
from idp.oauth.forms import read_form, single
from idp.oauth.responses import NO_STORE
from idp.oauth.revocation import Revocation
from idp.services import Services, services_of


def revocation_of(c: Services) -> Revocation:
    return Revocation(
        keyring=c.keyring, clock=c.clock, issuer=c.settings.issuer, grants=c.grants, denylist=c.denylist,
        audit=c.audit,
    )  # fmt: skip


async def revocation(request: Request) -> Response:
    c = services_of(request)
    form = single(await read_form(request))  # RFC 7009 §2.1: form-encoded POST
    client = await authenticate_client(request, c, endpoint="revocation", form=form, allow_public=True)
    check_client_origin(request.headers.getlist("origin"), client, own_origin(c.settings.issuer))
    token = form.get("token")
    if not token:
        raise InvalidRequest("the token parameter is required")  # RFC 7009 §2.1
    await run_in_threadpool(revocation_of(c).revoke, client, token, form.get("token_type_hint"))
    return Response(status_code=200, headers=NO_STORE)  # RFC 7009 §2.2: 200 whatever the token was


ROUTES: tuple[Route, ...] = (Route("/revoke", revocation, methods=["POST"]),)
