"""RFC 7009 token revocation: ``POST /revoke``.

* The caller authenticates as at the token endpoint (public clients identify with
  ``client_id``: RFC 7009 §2.1 lets them revoke their own tokens).
* An access token (our JWT) is deny-listed by ``jti`` until its ``exp``; resource servers
  following the deny-list refuse it within about a second.
* A refresh token revokes its whole grant (family) and deny-lists the family's live
  access tokens (RFC 7009 §2.1 "SHOULD also invalidate all access tokens based on the
  same authorization grant").
* ``token_type_hint`` only decides which kind is tried first; the other is tried too, and
  an unknown hint is ignored (§2.1).
* A token that is unknown, invalid, expired or already revoked gets 200 (§2.2). So does a
  token issued to another client, which is left untouched: revoking only your own
  tokens, without telling a caller whether someone else's string is a live token. That
  attempt is audited (``token.revoke_refused``).
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.clients.model import Client
from idp.errors import InvalidRequest
from idp.oauth.client_auth import authenticate_client
from idp.oauth.forms import read_form, single
from idp.services import Services
from idp.tokens import jwt
from idp.tokens.access import ACCEPTED_TYP, REQUIRED
from idp.web.cors import check_client_origin, own_origin
from idp.web.responses import NO_STORE

ACCESS, REFRESH = "access_token", "refresh_token"


def try_order(hint: str | None) -> tuple[str, str]:
    """The hint picks what to try first, never what to try only (RFC 7009 §2.1 / RFC 7662 §2.1)."""
    return (REFRESH, ACCESS) if hint == REFRESH else (ACCESS, REFRESH)


def verified_access_token(c: Services, token: str, *, allow_expired: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of one of our access tokens, whatever its audience; TokenInvalid otherwise."""
    return jwt.verify(
        c.keyring,
        token,
        typ=ACCEPTED_TYP,  # RFC 8725 §3.11: an ID token or logout token is not an access token
        issuer=c.settings.issuer,
        audience=None,  # the AS answers for every audience; who may ask is checked by the caller
        now=c.clock.now(),
        require=REQUIRED,
        allow_expired=allow_expired,
    )


def revoke(c: Services, client: Client, token: str, hint: str | None) -> str:
    """What happened, for tests and logs: revoked-access | revoked-refresh | foreign | expired | unknown."""
    actor = f"client:{client.client_id}"
    for kind in try_order(hint):
        if kind == ACCESS:
            if token.count(".") != 2:
                continue
            try:
                _, claims = verified_access_token(c, token, allow_expired=True)
            except jwt.TokenInvalid:
                continue
            if claims["client_id"] != client.client_id:  # RFC 7009 §2.1: only tokens issued to the caller
                return _refused(c, client, ACCESS, claims.get("client_id"))
            if claims["exp"] <= c.clock.now() - jwt.LEEWAY:
                return "expired"
            c.denylist.deny("jti", str(claims["jti"]), reason="revoked by client", actor=actor, until=claims["exp"])
            return "revoked-access"
        # Found, checked and revoked in one transaction; another client's token is left as it is.
        owner = c.grants.revoke_by_refresh_token(token, client_id=client.client_id, actor=actor)
        if owner is None:
            continue
        if owner != client.client_id:  # RFC 6749 §6 / RFC 7009 §2.1: bound to its client
            return _refused(c, client, REFRESH, owner)
        return "revoked-refresh"
    return "unknown"


def _refused(c: Services, client: Client, kind: str, owner: object) -> str:
    c.audit.record(
        "token.revoke_refused", actor=f"client:{client.client_id}", client_id=client.client_id,
        token_type=kind, owner=str(owner),
    )  # fmt: skip
    return "foreign"


def routes(c: Services) -> list[Route]:
    own = own_origin(c.settings.issuer)

    async def revocation(request: Request) -> Response:
        form = single(await read_form(request))  # RFC 7009 §2.1: form-encoded POST
        client = await authenticate_client(request, c, endpoint="revocation", form=form, allow_public=True)
        check_client_origin(request.headers.getlist("origin"), client, own)
        token = form.get("token")
        if not token:
            raise InvalidRequest("the token parameter is required")  # RFC 7009 §2.1
        await run_in_threadpool(revoke, c, client, token, form.get("token_type_hint"))
        return Response(status_code=200, headers=NO_STORE)  # RFC 7009 §2.2: 200 whatever the token was

    return [Route("/revoke", revocation, methods=["POST"])]
