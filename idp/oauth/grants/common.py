"""What the grants share: the services they use and how a user's token response is minted."""

from __future__ import annotations

from typing import Any

from idp.clients.model import Client
from idp.errors import InvalidGrant
from idp.oauth import policy
from idp.oauth.claims import id_token_claims
from idp.services import Services
from idp.tokens.access import IssuedAccessToken
from idp.tokens.refresh import Minted
from idp.users.directory import User


def active_user(c: Services, user_id: str | None) -> User:
    """The user a grant acts for; a deleted or disabled user ends every grant (ASVS V7.4.1)."""
    user = c.directory.store.get(user_id) if user_id else None
    if user is None or user.disabled:
        raise InvalidGrant("the user is no longer active")
    return user


def token_body(at: IssuedAccessToken, ttl: int, scopes: list[str]) -> dict[str, Any]:
    token_type = "DPoP" if "cnf" in at.claims else "Bearer"  # RFC 9449 §5: a DPoP-bound token says so
    body: dict[str, Any] = {"access_token": at.token, "token_type": token_type, "expires_in": ttl}
    if scopes:
        body["scope"] = " ".join(scopes)
    return body


def issue_user_access_token(
    c: Services,
    client: Client,
    *,
    user_id: str,
    scopes: list[str],
    audience: str,
    auth_time: float | None,
    acr: str | None,
    sid: str | None,
    jkt: str | None = None,
    amr: list[str] | None = None,
) -> IssuedAccessToken:
    return c.access_tokens.issue(
        client_id=client.client_id,
        sub=user_id,
        audience=policy.token_audiences(audience, scopes, c.settings.issuer),
        scope=" ".join(scopes),
        alg=policy.access_token_alg(client, c.settings.access_token_alg),
        auth_time=auth_time,
        acr=acr,
        amr=amr or (),
        sid=sid,
        jkt=jkt,
    )


def mint_for_user(
    c: Services,
    client: Client,
    *,
    user_id: str,
    scopes: list[str],
    audience: str,
    auth_time: float | None,
    acr: str | None,
    amr: list[str],
    sid: str | None,
    nonce: str | None = None,
    with_id_token: bool = True,
    user: User | None = None,
    jkt: str | None = None,
) -> Minted:
    at = issue_user_access_token(
        c, client, user_id=user_id, scopes=scopes, audience=audience, auth_time=auth_time, acr=acr, sid=sid,
        jkt=jkt, amr=amr,
    )  # fmt: skip
    body = token_body(at, c.access_tokens.ttl, scopes)
    if with_id_token and policy.OPENID in scopes:
        body["id_token"] = c.id_tokens.issue(
            client_id=client.client_id,
            sub=user_id,
            auth_time=auth_time,
            alg=policy.id_token_alg(client, c.settings.id_token_alg),
            nonce=nonce,
            sid=sid,
            acr=acr,
            amr=amr,
            access_token=at.token,
            extra=id_token_claims(client, user, scopes) if user is not None else None,
        )
    return Minted(response=body, at_jti=at.jti, at_exp=at.exp)
