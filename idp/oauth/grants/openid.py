"""OpenID Connect on the code grant: Authlib's OpenIDCode with the ID token from :mod:`idp.tokens.id_token`.

Authlib would sign with ``authlib.jose``/its own key resolution; every JWT here
is signed through the keyring instead, so only the hook is reused.
"""

from __future__ import annotations

from typing import Any

from authlib.oidc.core.grants import OpenIDCode

from idp.oauth import policy
from idp.oauth.claims import id_token_claims
from idp.oauth.grants.common import id_tokens


class IdTokenExtension(OpenIDCode):
    def __init__(self) -> None:
        super().__init__(require_nonce=False)

    def __call__(self, grant: Any) -> None:
        # Token side only: the authorization request is validated in idp.oauth.authorize.
        grant.register_hook("after_create_token_response", self.process_token)

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        return False  # codes are single use; a nonce replay is the relying party's check (OIDC Core §15.5.2)

    def process_token(self, grant: Any, response: Any) -> Any:
        _, token, _ = response
        if policy.OPENID not in str(token.get("scope", "")).split():
            return token  # plain OAuth: no ID token
        request = grant.request
        client = request.client.client
        data = request.authorization_code.data
        c = grant.server.c
        token["id_token"] = id_tokens(c).issue(
            client_id=client.client_id,
            sub=data.user_id,
            auth_time=data.auth_time,
            alg=policy.id_token_alg(client, c.settings.id_token_alg),
            nonce=data.nonce,  # OIDC Core §3.1.3.6: the authorization request's nonce, unmodified
            sid=data.sid,
            acr=data.acr,
            amr=data.amr,
            access_token=token["access_token"],
            extra=id_token_claims(client, request.user, data.scope.split()),
        )
        return token
