"""The UserInfo endpoint (OIDC Core §5.3): claims by scope for a Bearer or DPoP access token.

The token comes in the ``Authorization: Bearer`` header (scheme case-insensitive)
or a form body, never the query string (RFC 6750 §2.3 is removed by OAuth 2.1). A
DPoP-bound token (``cnf.jkt``) comes only as ``Authorization: DPoP`` with a proof by
its key carrying ``ath`` (RFC 9449 §7.1); presented as a bearer token it is refused
(§7.2). DPoP errors answer ``WWW-Authenticate: DPoP error=…, algs=…``.
Only access tokens addressed to the issuer are accepted (tokens carrying
``openid`` name it as an audience, see :mod:`idp.oauth.policy`), and the
deny-list is consulted, so revoked families, ended sessions and compromised keys
stop working here at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from idp.clients.origins import OriginRefused, check_client_origin, own_origin
from idp.errors import InsufficientScope, InvalidDPoPProof, InvalidRequest, InvalidToken, OAuthError
from idp.nonblocking import run_cached
from idp.oauth import dpop
from idp.oauth.claims import scope_claims
from idp.oauth.forms import is_form, parse_pairs, single
from idp.oauth.responses import NO_STORE, json_response, oauth_error_response
from idp.resource.dpop import challenge
from idp.services import Services, services_of
from idp.tokens.jwt import TokenInvalid

REALM = "idp"
DPOP_ERRORS = frozenset({"invalid_dpop_proof", "use_dpop_nonce"})


class BoundTokenAsBearer(InvalidToken):
    """RFC 9449 §7.2: answered with the DPoP challenge, telling the client which scheme the token needs."""


@dataclass(frozen=True)
class Presented:
    """The access token and how it came: ``dpop`` for ``Authorization: DPoP`` with the request's ``proof``."""

    token: str
    dpop: bool = False
    proof: str | None = None
    method: str = "GET"
    url: str = ""


def _error(c: Services, exc: OAuthError, presented: Presented | None, proof_sent: bool) -> Response:
    """RFC 6750 §3: every error carries a challenge with the error code; a DPoP one (RFC 9449 §7.1, with the
    accepted ``algs``) when the request used DPoP or the error is about it."""
    response = oauth_error_response(exc)
    desc = exc.description.replace('"', "'").replace("\\", "")
    dpop_request = proof_sent or (presented is not None and presented.dpop)
    if exc.error in DPOP_ERRORS or dpop_request or isinstance(exc, BoundTokenAsBearer):
        response.headers["www-authenticate"] = challenge(c.dpop.algs, exc.error, desc)
    else:
        bearer = f'Bearer realm="{REALM}", error="{exc.error}", error_description="{desc}"'
        response.headers["www-authenticate"] = bearer
    return response


async def _token_from(request: Request) -> Presented | None:
    if "access_token" in request.query_params:
        raise InvalidRequest("access tokens are not accepted in the query string")  # RFC 6750 §2.3 / OAuth 2.1
    tokens: list[Presented] = []
    auth = request.headers.get("authorization")
    if auth is not None:
        scheme, _, value = auth.strip().partition(" ")
        kind = scheme.lower()  # RFC 6750 §2.1, RFC 9449 §7.1: the scheme is case-insensitive
        if kind not in ("bearer", "dpop") or not value.strip():
            raise InvalidToken("expected a Bearer or DPoP token")
        if kind == "dpop":
            proof = dpop.proof_of(request.headers, status=401)
            url = f"{services_of(request).settings.issuer}/userinfo"
            tokens.append(Presented(value.strip(), dpop=True, proof=proof, method=request.method, url=url))
        else:
            tokens.append(Presented(value.strip()))
    if request.method == "POST" and is_form(request):
        form = single(parse_pairs(await request.body()))
        if "access_token" in form:
            tokens.append(Presented(form["access_token"]))  # RFC 6750 §2.2: a bearer token
    if len(tokens) > 1:
        raise InvalidRequest("send the access token once")  # RFC 6750 §2: one method per request
    return tokens[0] if tokens else None


def _sender_constraint(c: Services, claims: dict[str, Any], presented: Presented, proof_sent: bool) -> None:
    """RFC 9449 §7: a bound token needs the DPoP scheme and a proof by its key over this request and token.

    Runs last in :func:`claims_for`: the proof's ``jti`` is recorded as used here, so nothing after it may
    send the work to the threadpool to be run again."""
    cnf = claims.get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    if not presented.dpop:
        if jkt is not None:  # RFC 9449 §7.2: a DPoP-bound token is not a bearer token
            raise BoundTokenAsBearer("the access token is DPoP-bound: send it with the DPoP scheme and a proof")
        if proof_sent:
            raise InvalidToken("a DPoP proof came with a bearer token: use the DPoP scheme for DPoP-bound tokens")
        return
    if jkt is None:
        raise InvalidToken("the access token is not DPoP-bound: send it as a Bearer token")
    if presented.proof is None:  # RFC 9449 §7.1: the DPoP scheme comes with a proof
        raise InvalidDPoPProof("a DPoP proof is required", status=401)
    verified = dpop.checked(
        c, presented.proof, method=presented.method, url=presented.url, access_token=presented.token, status=401
    )  # RFC 9449 §4.3, with ath (§7.1)
    if verified.jkt != jkt:  # RFC 9449 §4.3 point 12: the proof's key is the token's key
        raise InvalidToken("the DPoP proof is not signed by the key the access token is bound to")


def claims_for(
    c: Services,
    token: str | Presented,
    origins: Sequence[str] = (),
    own: str = "",
    proof_sent: bool = False,
) -> dict[str, Any]:
    """Blocking: verifies the token, consults the deny-list, loads the user, checks the DPoP binding.

    ``origins`` (the request's ``Origin`` headers) must be the issuer's (``own``) or the origins of the
    client the token was issued to: a page of one client cannot read the user's claims with another's token.
    ``proof_sent``: the request carried a ``DPoP`` header.
    """
    presented = token if isinstance(token, Presented) else Presented(token)
    token = presented.token
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
    _sender_constraint(c, claims, presented, proof_sent)
    return {"sub": user.id, **scope_claims(user, scopes)}  # OIDC Core §5.4


async def userinfo(request: Request) -> Response:
    """GET or POST /userinfo (OIDC Core §5.3)."""
    c = services_of(request)
    presented: Presented | None = None
    proof_sent = dpop.HEADER in request.headers
    try:
        presented = await _token_from(request)
        if presented is None:
            # RFC 6750 §3.1: no credentials at all -> 401 with bare challenges, no error code (RFC 9449 §7.1).
            return json_response(
                {"error": "invalid_token", "error_description": "an access token is required"},
                401,
                {**NO_STORE, "www-authenticate": f'Bearer realm="{REALM}", {challenge(c.dpop.algs)}'},
            )
        own = own_origin(c.settings.issuer)
        claims = await run_cached(claims_for, c, presented, request.headers.getlist("origin"), own, proof_sent)
    except OriginRefused:
        raise  # the CORS refusal, as the middleware gives it: not a token error, no Bearer challenge
    except OAuthError as exc:
        return _error(c, exc, presented, proof_sent)
    return json_response(claims, 200, {**NO_STORE, **dpop.success_headers(c, request.headers)})
