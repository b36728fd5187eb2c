"""OAuth 2.0 Token Exchange (RFC 8693): a confidential client trades one of our access tokens for a short-lived
access token addressed to one other audience, naming itself (and an actor, if given) in ``act``.

Decisions (and docs/protocol.md, "Token exchange"):

* Only our own access tokens (``at+jwt``) are exchanged, as ``subject_token`` and ``actor_token``: the
  decision is introspection's (:meth:`idp.oauth.introspection.Introspection.access_token_state`: signature,
  pinned kid/alg, typ, iss, exp, deny-list, client and user cut-offs, a disabled client or user). A client
  may exchange a token issued to it or one whose ``aud`` names it (RFC 7662 §4's rule for who may see it).
* Every refusal of a subject or actor token is ``invalid_request`` (RFC 8693 §2.2.2 MUST), its reason in the
  log detail only.
* The target: exactly one ``audience`` or ``resource`` (RFC 8707), one of the client's registered
  ``token_exchange_audiences``; else ``invalid_target``.
* ``scope`` narrows the subject token's scope, never widens it (``invalid_scope``).
* A DPoP-bound subject token (``cnf.jkt``, RFC 9449) is exchanged only with a DPoP proof by that same key,
  and the new token is bound to it again: a thief holding only the token cannot turn it into a bearer
  token, and a binding is never dropped. An unbound subject with a proof gives a token bound to the proof.
* The subject token must name a user (``sub`` other than its ``client_id``); a client's own token may
  be the actor token.
* The result lives ``IDP_TOKEN_EXCHANGE_TTL`` seconds, never past the subject's (or actor's) ``exp``; it
  keeps the subject's ``sub``, ``sid``, ``auth_time``, ``acr``, ``amr`` so that subject and session cut-offs
  and step-up checks go on applying; no refresh token (RFC 8693 §2.2.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from idp.clients.model import TOKEN_EXCHANGE, Client
from idp.errors import InvalidRequest, InvalidScope, InvalidTarget
from idp.oauth import policy
from idp.oauth.introspection import introspection_of, may_see
from idp.oauth.token.request import TokenRequest
from idp.services import Services

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # RFC 8693 §3
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"  # RFC 8693 §3: our access tokens are JWTs too
REQUESTABLE = (ACCESS_TOKEN_TYPE, JWT_TYPE)
MAX_TOKEN = 8192  # our access tokens are well under 2 KB (the size budget is tested)
MAX_ACT_DEPTH = 5  # nested delegations kept in one token; deeper chains are refused, not truncated
USER_CLAIMS = ("auth_time", "acr", "amr", "sid")


class UnacceptableToken(InvalidRequest):
    """RFC 8693 §2.2.2: a subject or actor token invalid for any reason, or unacceptable by policy."""


def token_param(request: TokenRequest, name: str, type_name: str) -> str | None:
    """A token and its type: both or neither, the type ours (RFC 8693 §2.1); None when neither is given."""
    token, token_type = request.get(name), request.get(type_name)
    if token is None and token_type is None:
        return None
    if token is None or token_type is None:
        raise InvalidRequest(f"{name} and {type_name} go together")  # RFC 8693 §2.1
    if token_type != ACCESS_TOKEN_TYPE:
        raise InvalidRequest(f"{type_name} must be {ACCESS_TOKEN_TYPE}")
    if len(token) > MAX_TOKEN:
        raise InvalidRequest(f"malformed {name}")
    return token


def requested_type(value: str | None) -> None:
    """RFC 8693 §2.1 ``requested_token_type``: we issue access tokens (JWTs) only."""
    if value is not None and value not in REQUESTABLE:
        raise InvalidRequest(f"requested_token_type must be {ACCESS_TOKEN_TYPE}")


def target(client: Client, audience: str | None, resources: list[str]) -> str:
    """The one audience of the new token: ``audience`` and/or ``resource`` naming one value the client is
    registered to exchange for (RFC 8693 §2.1, RFC 8707 §2)."""
    named = list(dict.fromkeys([*([audience] if audience is not None else []), *resources]))
    if not named:
        raise InvalidTarget("name the audience or resource to exchange for")
    if len(named) > 1:
        raise InvalidTarget("only one audience or resource per exchanged token")
    if named[0] not in client.token_exchange_audiences:
        raise InvalidTarget("the client may not exchange tokens for this audience")  # RFC 8693 §2.2.2
    return named[0]


def narrowed_scope(subject_scope: Any, requested: str | None) -> list[str]:
    """The subject token's scope, or the part of it ``requested`` names (RFC 8693 §2.1: never more)."""
    held = subject_scope.split() if isinstance(subject_scope, str) else []
    tokens = policy.parse_scope(requested)
    if tokens is None:
        return held
    if any(t not in held for t in tokens):
        raise InvalidScope("the scope exceeds the subject token's")
    return tokens


def act_depth(act: Any) -> int:
    depth = 0
    while isinstance(act, Mapping):
        depth += 1
        act = act.get("act")
    return depth


def actor_claim(client: Client, subject: Mapping[str, Any], actor: Mapping[str, Any] | None) -> dict[str, Any]:
    """RFC 8693 §4.1: the current actor (the actor token's ``sub``, else the client) with the exchanging
    ``client_id`` (§4.3), the subject token's own ``act`` nested as the prior chain."""
    act: dict[str, Any] = {"sub": actor["sub"] if actor is not None else client.client_id}
    act["client_id"] = client.client_id
    prior = subject.get("act")
    if prior is not None:
        if not isinstance(prior, Mapping) or act_depth(prior) >= MAX_ACT_DEPTH:
            raise UnacceptableToken("the subject token's delegation chain is too long")
        act["act"] = dict(prior)
    return act


def binding(subject: Mapping[str, Any], proof_jkt: str | None) -> str | None:
    """The key the new token is bound to: a bound subject's, proven by this request's DPoP proof (RFC 9449)."""
    cnf = subject.get("cnf")
    if cnf is None:
        return proof_jkt
    jkt = cnf.get("jkt") if isinstance(cnf, Mapping) else None
    if not isinstance(jkt, str) or proof_jkt != jkt:
        raise UnacceptableToken("the subject token is DPoP-bound: send a DPoP proof by its key")
    return jkt


class TokenExchangeGrant:
    grant_type: ClassVar[str] = TOKEN_EXCHANGE
    parameters: ClassVar[frozenset[str]] = frozenset(
        {"subject_token", "subject_token_type", "actor_token", "actor_token_type", "requested_token_type",
         "audience", "scope"}
    )  # fmt: skip
    public_clients: ClassVar[bool] = False  # RFC 8693 §2.1 / ASVS V10.4: an authenticated client only
    blocking: ClassVar[bool] = True  # the user and client reads of introspection, the audit row

    def issue(self, services: Services, request: TokenRequest) -> dict[str, Any]:
        client = request.client
        subject_token = token_param(request, "subject_token", "subject_token_type")
        if subject_token is None:
            raise InvalidRequest("missing subject_token")  # RFC 8693 §2.1: REQUIRED
        actor_token = token_param(request, "actor_token", "actor_token_type")
        requested_type(request.get("requested_token_type"))
        audience = target(client, request.get("audience"), request.resources)
        subject = self.live(services, client, subject_token, "subject_token")
        if subject["sub"] == subject.get("client_id"):
            # A client's own token (client_credentials) names no user: exchanged, its sub would name a client
            # that introspection looks up as a user (inactive) while resource servers took it.
            raise UnacceptableToken("the subject_token names no user")
        actor = self.live(services, client, actor_token, "actor_token") if actor_token is not None else None
        scopes = narrowed_scope(subject.get("scope"), request.get("scope"))
        act = actor_claim(client, subject, actor)
        jkt = binding(subject, request.dpop_jkt)
        not_after = min(int(subject["exp"]), int(actor["exp"]) if actor is not None else int(subject["exp"]))
        if not_after <= int(services.clock.now()):  # within the verifier's leeway, but nothing left to hand on
            raise UnacceptableToken("the subject or actor token has expired")
        at = services.access_tokens.issue(
            client_id=client.client_id,
            sub=subject["sub"],
            audience=[audience],
            scope=" ".join(scopes),
            alg=policy.access_token_alg(client, services.settings.access_token_alg),
            auth_time=subject.get("auth_time"),
            acr=subject.get("acr"),
            amr=subject.get("amr") or (),
            sid=subject.get("sid"),
            jkt=jkt,
            ttl=services.settings.token_exchange_ttl,
            not_after=not_after,
            act=act,
        )
        services.audit.record(
            "token.exchanged",
            actor=client.client_id,
            subject=subject["sub"],
            client_id=client.client_id,
            audience=audience,
            subject_client_id=subject.get("client_id"),
            subject_jti=subject.get("jti"),
            actor_sub=actor["sub"] if actor is not None else None,
            jti=at.jti,
        )
        body: dict[str, Any] = {
            "access_token": at.token,
            "issued_token_type": ACCESS_TOKEN_TYPE,  # RFC 8693 §2.2.1: REQUIRED
            "token_type": "DPoP" if jkt is not None else "Bearer",
            "expires_in": at.exp - int(services.clock.now()),
        }
        if scopes:
            body["scope"] = " ".join(scopes)
        return body

    @staticmethod
    def live(services: Services, client: Client, token: str, name: str) -> dict[str, Any]:
        """The claims of a live access token of ours this client may exchange; UnacceptableToken otherwise."""
        state = introspection_of(services).access_token_state(token)
        if state is None:
            raise UnacceptableToken(f"the {name} is not an active access token of this server")
        if state.claims is None:
            raise UnacceptableToken(f"the {name} is not active", detail=state.why)
        if not may_see(client, state.claims):  # issued to this client, or naming it in aud
            raise UnacceptableToken(f"the {name} was neither issued to nor addressed to this client")
        if not isinstance(state.claims.get("sub"), str) or not isinstance(state.claims.get("exp"), int):
            raise UnacceptableToken(f"malformed {name}")
        return state.claims
