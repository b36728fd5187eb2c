"""The refresh token grant (RFC 6749 §6) with rotation on every use and reuse detection.

Authlib's grant does not rotate unless told to and has no reuse detection; the
whole exchange is delegated to :meth:`idp.tokens.refresh.RefreshTokens.rotate`,
which validates, rotates and persists in one transaction.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.hooks import hooked

from idp.clients.model import AUTH_METHODS
from idp.errors import InvalidRequest
from idp.oauth import policy
from idp.oauth.grants.common import JSON_HEADERS, active_user, mint_for_user
from idp.tokens.refresh import GrantRecord, Minted

MAX_REFRESH_TOKEN = 512


class RotatingRefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)
    INCLUDE_NEW_REFRESH_TOKEN = True  # RFC 9700 §4.14.2: rotate (public clients MUST be rotated or bound)

    def validate_token_request(self) -> None:
        self.request.client = self._validate_request_client()  # authenticated + unauthorized_client check
        token = self.request.form.get("refresh_token")
        if not token:
            raise InvalidRequest("missing refresh_token")
        if len(token) > MAX_REFRESH_TOKEN:
            raise InvalidRequest("malformed refresh_token")

    @hooked
    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        c = self.server.c
        client = self.request.client.client
        requested = policy.parse_scope(self.request.payload.scope)
        resources = self.request.resources

        def mint(grant: GrantRecord, scope: str) -> Minted:
            user = active_user(c, grant.user_id)
            audience = policy.resolve_audience(client, resources, c.settings.audience, fallback=grant.audience)
            return mint_for_user(
                c,
                client,
                user_id=grant.user_id or "",
                scopes=scope.split(),
                audience=audience,
                auth_time=grant.auth_time,  # OIDC Core §12.2: the original authentication time
                acr=grant.acr,
                amr=grant.amr,
                sid=grant.sid,
                user=user,
            )

        body = c.grants.rotate(
            self.request.form["refresh_token"], client_id=client.client_id, scope=requested, mint=mint
        )
        return 200, body, JSON_HEADERS
