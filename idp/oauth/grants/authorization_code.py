"""The authorization code grant at the token endpoint (RFC 6749 §4.1.3), with PKCE and the ID token.

Codes are redeemed from :mod:`idp.tokens.codes` (single use: a replay revokes everything the code issued,
RFC 6749 §4.1.2), checked against the authorization request they came from (client, ``redirect_uri``,
PKCE), and open a grant family for what they issue. The authorization-endpoint half (error page vs
redirect, ``iss``, login and consent) is :mod:`idp.oauth.authorize`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from idp.errors import InvalidGrant, InvalidRequest
from idp.oauth import dpop, policy
from idp.oauth.claims import id_token_claims
from idp.oauth.grants import pkce
from idp.oauth.grants.common import active_user, issue_user_access_token, token_body
from idp.oauth.token.request import TokenRequest
from idp.services import Services
from idp.tokens.codes import CodeData, CodeInvalid, CodeReplayed

MAX_CODE = 256
REPLAY = "authorization code replay"


class AuthorizationCodeGrant:
    grant_type: ClassVar[str] = "authorization_code"
    parameters: ClassVar[frozenset[str]] = frozenset({"code", "redirect_uri", "code_verifier"})
    public_clients: ClassVar[bool] = True  # with PKCE (RFC 7636; RFC 8252 §8.1)
    blocking: ClassVar[bool] = True

    def issue(self, services: Services, request: TokenRequest) -> dict[str, Any]:
        code = request.get("code")
        if code is None:
            raise InvalidRequest("missing code")  # RFC 6749 §4.1.3
        data, digest = self.redeem(services, code, request.client.client_id)
        if request.get("redirect_uri") != data.redirect_uri:
            raise InvalidGrant("redirect_uri does not match the authorization request")  # RFC 6749 §4.1.3
        pkce.verify(data.code_challenge, data.code_challenge_method, request.get("code_verifier"))
        if data.dpop_jkt is not None and request.dpop_jkt != data.dpop_jkt:  # RFC 9449 §10: the code's key
            raise InvalidGrant("a DPoP proof by the dpop_jkt key is required" if request.dpop_jkt is None
                               else "the DPoP proof's key does not match dpop_jkt")  # fmt: skip
        return self.tokens(services, request, data, digest)

    def redeem(self, services: Services, code: str, client_id: str) -> tuple[CodeData, bytes]:
        """The code's data, consumed (the atomic take is the single use); InvalidGrant otherwise."""
        if len(code) > MAX_CODE:
            raise InvalidGrant("unknown authorization code")
        try:
            data, digest = services.codes.redeem(code)
        except CodeReplayed as exc:
            # RFC 6749 §4.1.2 / ASVS V10.4.2: a second use revokes everything issued from the code.
            self.revoke_replayed(services, exc.digest, client_id)
            raise InvalidGrant("authorization code already used") from None
        except CodeInvalid as exc:
            # Replays later than the ephemeral marker still find the family by its durable code digest.
            self.revoke_replayed(services, exc.digest, client_id)
            raise InvalidGrant(str(exc)) from None
        if data.client_id != client_id:
            raise InvalidGrant("authorization code was issued to another client")  # RFC 6749 §4.1.3
        return data, digest

    @staticmethod
    def revoke_replayed(services: Services, digest: bytes, client_id: str) -> None:
        if services.grants.revoke_by_code(digest, actor=client_id, reason=REPLAY):
            services.audit.record("authorization_code_replay", actor=client_id, client_id=client_id)

    def tokens(self, services: Services, request: TokenRequest, data: CodeData, digest: bytes) -> dict[str, Any]:
        client = request.client
        user = active_user(services, data.user_id)
        scopes = data.scope.split()
        audience = policy.resolve_audience(
            client, request.resources, services.settings.audience, fallback=data.resource
        )
        at = issue_user_access_token(
            services, client, user_id=data.user_id, scopes=scopes, audience=audience,
            auth_time=data.auth_time, acr=data.acr, sid=data.sid, jkt=request.dpop_jkt, amr=data.amr,
        )  # fmt: skip
        grant, refresh = services.grants.start(
            client_id=client.client_id, user_id=data.user_id, sid=data.sid, scope=data.scope, audience=audience,
            auth_time=data.auth_time, acr=data.acr, amr=data.amr, code_digest=digest, at_jti=at.jti, at_exp=at.exp,
            with_refresh=policy.issues_refresh(client, scopes),
            jkt=request.dpop_jkt if dpop.binds_refresh(services, client) else None,  # RFC 9449 §5
        )  # fmt: skip
        if services.codes.was_replayed(digest):
            # A replay arrived while this exchange was issuing: it loses too (RFC 6749 §4.1.2).
            services.grants.revoke_grant(grant.id, actor=client.client_id, reason=REPLAY)
            raise InvalidGrant("authorization code already used")
        body = token_body(at, services.access_tokens.ttl, scopes)
        if refresh:
            body["refresh_token"] = refresh
        if policy.OPENID in scopes:  # OIDC Core §3.1.3.3: an ID token for an OpenID request
            if data.sid and client.backchannel_logout_uri:
                # BCL §2: the RP holds a session of its own for this sid now; its end is owed a logout token.
                services.login_sessions.signed_into(data.sid, client.client_id)
            body["id_token"] = services.id_tokens.issue(
                client_id=client.client_id,
                sub=data.user_id,
                auth_time=data.auth_time,
                alg=policy.id_token_alg(client, services.settings.id_token_alg),
                nonce=data.nonce,  # OIDC Core §3.1.3.6: the authorization request's nonce, unmodified
                sid=data.sid,
                acr=data.acr,
                amr=data.amr,
                access_token=at.token,
                extra=id_token_claims(client, user, scopes),
            )
        return body
