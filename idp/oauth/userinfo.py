"""The UserInfo endpoint (OIDC Core §5.3): claims by scope for a Bearer access token.

The token comes in the ``Authorization: Bearer`` header (scheme case-insensitive)
or a form body, never the query string (RFC 6750 §2.3 is removed by OAuth 2.1).
Only access tokens addressed to the issuer are accepted (tokens carrying
``openid`` name it as an audience, see :mod:`idp.oauth.policy`), and the
deny-list is consulted, so revoked families, ended sessions and compromised keys
stop working here at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from idp.clients.origins import OriginRefused, check_client_origin, own_origin
from idp.errors import InsufficientScope, InvalidRequest, InvalidToken, OAuthError
from idp.nonblocking import run_cached
from idp.oauth.claims import scope_claims
from idp.oauth.forms import is_form, parse_pairs, single
from idp.oauth.responses import NO_STORE, json_response, oauth_error_response
from idp.services import Services, services_of
from idp.tokens.jwt import TokenInvalid

REALM = "idp"


def _bearer_error(exc: OAuthError) -> Response:
    """RFC 6750 §3: every error carries WWW-Authenticate: Bearer with the error code."""
    response = oauth_error_response(exc)
    desc = exc.description.replace('"', "'").replace("\\", "")
    response.headers["www-authenticate"] = f'Bearer realm="{REALM}", error="{exc.error}", error_description="{desc}"'
    return response


async def _token_from(request: Request) -> str | None:
    if "access_token" in request.query_params:
        raise InvalidRequest("access tokens are not accepted in the query string")  # RFC 6750 §2.3 / OAuth 2.1
    tokens: list[str] = []
    auth = request.headers.get("authorization")
    if auth is not None:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():  # RFC 6750 §2.1; scheme is case-insensitive
            raise InvalidToken("expected a Bearer token")
        tokens.append(value.strip())
    if request.method == "POST" and is_form(request):
        form = single(parse_pairs(await request.body()))
        if "access_token" in form:
            tokens.append(form["access_token"])  # RFC 6750 §2.2
    if len(tokens) > 1:
        raise InvalidRequest("send the access token once")  # RFC 6750 §2: one method per request
    return tokens[0] if tokens else None


def claims_for(c: Services, token: str, origins: Sequence[str] = (), own: str = "") -> dict[str, Any]:
    """Blocking: verifies the token, consults the deny-list, loads the user.

    ``origins`` (the request's ``Origin`` headers) must be the issuer's (``own``) or the origins of the
    client the token was issued to: a page of one client cannot read the user's claims with another's token.
    """
    try:
        header, claims = c.access_tokens.verify(token, audience=c.settings.issuer)
    except TokenInvalid as exc:
        raise InvalidToken(str(exc)) from None
    if c.denylist.is_denied(claims, header.get("kid")):
        raise InvalidToken("the access token was revoked")
    client_id = claims.get("client_id")
    client = c.clients.get_active(client_id) if isinstance(client_id, str) else None
    if client is None:  # deleted or disabled: at once
        raise InvalidToken("the client is no longer active")
    check_client_origin(origins, client, own)
    scopes = str(claims.get("scope", "")).split()
    if "openid" not in scopes:
        raise InsufficientScope("the openid scope is required")  # OIDC Core §5.3
    user = c.directory.store.get(str(claims["sub"]))
    if user is None or user.disabled:
        raise InvalidToken("the user is no longer active")
    return {"sub": user.id, **scope_claims(user, scopes)}  # OIDC Core §5.4


async def userinfo(request: Request) -> Response:
    """GET or POST /userinfo (OIDC Core §5.3)."""
    c = services_of(request)
    try:
        token = await _token_from(request)
        if token is None:
            # RFC 6750 §3.1: no credentials at all -> 401 with a bare challenge, no error code.
            return json_response(
                {"error": "invalid_token", "error_description": "an access token is required"},
                401,
                {**NO_STORE, "www-authenticate": f'Bearer realm="{REALM}"'},
            )
        own = own_origin(c.settings.issuer)
        claims = await run_cached(claims_for, c, token, request.headers.getlist("origin"), own)
    except OriginRefused:
        raise  # the CORS refusal, as the middleware gives it: not a token error, no Bearer challenge
    except OAuthError as exc:
        return _bearer_error(exc)
    return json_response(claims, 200, NO_STORE)
