"""The authorization code grant at the token endpoint (RFC 6749 §4.1.3), hardened.

Authlib validates the request shape, the client's grant type and the redirect
URI; this subclass redeems codes from :mod:`idp.tokens.codes` (single use,
replay revokes the family), and opens a grant family for what it issues. PKCE
(:class:`idp.oauth.grants.pkce.Pkce`) and the ID token
(:class:`idp.oauth.grants.openid.IdTokenExtension`) are extensions.

The authorization-endpoint half of Authlib's grant is not used: the rules there
(error page vs redirect, ``iss``, login and consent) live in :mod:`idp.oauth.authorize`.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.hooks import hooked

from idp.clients.model import AUTH_METHODS
from idp.errors import InvalidGrant
from idp.oauth import policy
from idp.oauth.grants.common import JSON_HEADERS, access_tokens, active_user, issue_user_access_token, token_body
from idp.tokens.codes import CodeData, CodeInvalid, CodeReplayed


class RedeemedCode:
    """Authlib's AuthorizationCodeMixin over a redeemed :class:`CodeData`."""

    def __init__(self, data: CodeData, digest: bytes) -> None:
        self.data = data
        self.digest = digest

    def get_redirect_uri(self) -> str:
        return self.data.redirect_uri

    def get_scope(self) -> str:
        return self.data.scope

    def get_nonce(self) -> str | None:
        return self.data.nonce

    def get_auth_time(self) -> int:
        return int(self.data.auth_time)

    def get_acr(self) -> str | None:
        return self.data.acr

    def get_amr(self) -> list[str]:
        return self.data.amr


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)

    def query_authorization_code(self, code: str, client: Any) -> RedeemedCode:
        c = self.server.c
        actor = client.get_client_id()
        if len(code) > 256:
            raise InvalidGrant("unknown authorization code")
        try:
            data, digest = c.codes.redeem(code)
        except CodeReplayed as exc:
            # RFC 6749 §4.1.2 / ASVS V10.4.2: a second use revokes everything issued from the code.
            if c.grants.revoke_by_code(exc.digest, actor=actor, reason="authorization code replay"):
                c.audit.record("authorization_code_replay", actor=actor, client_id=actor)
            raise InvalidGrant("authorization code already used") from None
        except CodeInvalid as exc:
            # Replays later than the ephemeral marker still find the family by its durable code digest.
            if c.grants.revoke_by_code(exc.digest, actor=actor, reason="authorization code replay"):
                c.audit.record("authorization_code_replay", actor=actor, client_id=actor)
            raise InvalidGrant(str(exc)) from None
        if data.client_id != actor:
            raise InvalidGrant("authorization code was issued to another client")  # RFC 6749 §4.1.3
        return RedeemedCode(data, digest)

    def delete_authorization_code(self, authorization_code: RedeemedCode) -> None:
        """Already consumed by the atomic take in redeem()."""

    def authenticate_user(self, authorization_code: RedeemedCode) -> Any:
        return active_user(self.server.c, authorization_code.data.user_id)

    @hooked
    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        c = self.server.c
        client = self.request.client.client
        code: RedeemedCode = self.request.authorization_code
        data = code.data
        self.request.user = self.authenticate_user(code)
        scopes = data.scope.split()
        audience = policy.resolve_audience(client, self.request.resources, c.settings.audience, fallback=data.resource)
        at = issue_user_access_token(
            c,
            client,
            user_id=data.user_id,
            scopes=scopes,
            audience=audience,
            auth_time=data.auth_time,
            acr=data.acr,
            sid=data.sid,
        )
        grant, refresh = c.grants.start(
            client_id=client.client_id,
            user_id=data.user_id,
            sid=data.sid,
            scope=data.scope,
            audience=audience,
            auth_time=data.auth_time,
            acr=data.acr,
            amr=data.amr,
            code_digest=code.digest,
            at_jti=at.jti,
            at_exp=at.exp,
            with_refresh=policy.issues_refresh(client, scopes),
        )
        if c.codes.was_replayed(code.digest):
            # A replay arrived while this exchange was issuing: it loses too (RFC 6749 §4.1.2).
            c.grants.revoke_grant(grant.id, actor=client.client_id, reason="authorization code replay")
            raise InvalidGrant("authorization code already used")
        body = token_body(at, access_tokens(c).ttl, scopes)
        if refresh:
            body["refresh_token"] = refresh
        return 200, body, JSON_HEADERS
