"""RFC 7662 token introspection: ``POST /introspect``.

The caller must authenticate as a confidential client (RFC 7662 §2.1; ASVS V10.4.10).
Every token that is not active *for this caller* gets exactly ``{"active": false}``
(§2.2): unknown, malformed, expired, revoked, deny-listed (jti, subject/session/client
cut-off, compromised key), issued to a disabled or deleted client or user, or one the
caller may not see. Who may see what (§4: the AS decides whether the token may be used
at the resource server asking):

* an access token: the client it was issued to, and the resource server it is meant
  for, i.e. a client whose ``client_id`` or registered ``audience`` is in the token's
  ``aud`` (register a resource server as a ``service`` client with ``--audience`` equal
  to its API identifier);
* a refresh token: only the client it was issued to.

Active answers carry ``scope``, ``client_id``, ``sub``, ``aud``, ``iss``, ``exp``, ``iat``
and ``token_type`` (``Bearer`` for access tokens, ``refresh_token`` for refresh tokens).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.clients.model import Client
from idp.errors import InvalidRequest
from idp.oauth.client_auth import authenticate_client
from idp.oauth.forms import read_form, single
from idp.services import Services
from idp.tokens import jwt
from idp.web.cors import check_client_origin, own_origin
from idp.web.inline import run_cached
from idp.web.responses import NO_STORE, json_response
from idp.web.revocation import ACCESS, try_order, verified_access_token

INACTIVE: dict[str, Any] = {"active": False}


def _may_see(caller: Client, claims: dict[str, Any]) -> bool:
    if claims.get("client_id") == caller.client_id:
        return True
    aud = claims.get("aud")
    auds = {aud} if isinstance(aud, str) else set(aud) if isinstance(aud, list) else set()
    return caller.client_id in auds or bool(caller.audience and caller.audience in auds)


def _parties_active(c: Services, client_id: Any, user_id: Any) -> bool:
    """A disabled or deleted client or user ends its tokens at once (not at exp)."""
    if not isinstance(client_id, str) or c.clients.get_active(client_id) is None:
        return False
    if isinstance(user_id, str) and user_id != client_id:
        user = c.directory.store.get(user_id)
        if user is None or user.disabled:
            return False
    return True


def introspect(c: Services, caller: Client, token: str, hint: str | None) -> dict[str, Any]:
    for kind in try_order(hint):
        answer = _access_token(c, caller, token) if kind == ACCESS else _refresh_token(c, caller, token)
        if answer is not None:
            return answer
    return INACTIVE


def _access_token(c: Services, caller: Client, token: str) -> dict[str, Any] | None:
    """None when this is not one of our access tokens; INACTIVE or the answer when it is."""
    if token.count(".") != 2:
        return None
    try:
        header, claims = verified_access_token(c, token, allow_expired=False)
    except jwt.TokenInvalid:
        return None
    if c.denylist.is_denied(claims, header.get("kid")):  # RFC 7662 §2.2: revoked => inactive
        return INACTIVE
    if not _may_see(caller, claims) or not _parties_active(c, claims.get("client_id"), claims.get("sub")):
        return INACTIVE
    out = {name: claims[name] for name in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat") if name in claims}
    return {"active": True, **out, "token_type": "Bearer"}


def _refresh_token(c: Services, caller: Client, token: str) -> dict[str, Any] | None:
    found = c.grants.lookup(token)  # None unless live: not rotated, revoked, idle- or absolutely expired
    if found is None:
        return None
    row, grant = found
    if grant.client_id != caller.client_id or not _parties_active(c, grant.client_id, grant.user_id):
        return INACTIVE
    # Subject and client cut-offs cover refresh tokens issued before them. Session entries do not: which
    # families outlive a login session (offline_access) is the grant store's decision, already in `lookup`.
    if c.denylist.is_denied({"sub": grant.user_id, "client_id": grant.client_id, "iat": row.created_at}):
        return INACTIVE
    out: dict[str, Any] = {
        "active": True,
        "scope": row.scope,
        "client_id": grant.client_id,
        "iss": c.settings.issuer,
        "exp": int(min(row.idle_expires_at, grant.absolute_expires_at)),
        "iat": int(row.created_at),
        "token_type": "refresh_token",
    }
    if grant.user_id:
        out["sub"] = grant.user_id
    if grant.audience:
        out["aud"] = grant.audience
    return out


def routes(c: Services) -> list[Route]:
    own = own_origin(c.settings.issuer)

    async def introspection(request: Request) -> Response:
        form = single(await read_form(request))
        # RFC 7662 §2.1: the caller must be authorized; public clients are refused.
        caller = await authenticate_client(request, c, endpoint="introspection", form=form)
        check_client_origin(request.headers.getlist("origin"), caller, own)
        token = form.get("token")
        if not token:
            raise InvalidRequest("the token parameter is required")  # RFC 7662 §2.1
        body = await run_cached(introspect, c, caller, token, form.get("token_type_hint"))
        return json_response(body, 200, NO_STORE)

    return [Route("/introspect", introspection, methods=["POST"])]
