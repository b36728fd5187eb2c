"""The refresh token grant (RFC 6749 §6) with rotation on every use and reuse detection.

The whole exchange is :meth:`idp.tokens.refresh.RefreshTokens.rotate`: it validates, rotates and persists
in one transaction, and a reused token revokes its family (RFC 9700 §4.14.2).
"""

from __future__ import annotations

from typing import Any, ClassVar

from idp.errors import InvalidRequest
from idp.oauth import policy
from idp.oauth.grants.common import active_user, mint_for_user
from idp.oauth.token.request import TokenRequest
from idp.services import Services
from idp.tokens.refresh import GrantRecord, Minted

MAX_REFRESH_TOKEN = 512


class RefreshTokenGrant:
    grant_type: ClassVar[str] = "refresh_token"
    parameters: ClassVar[frozenset[str]] = frozenset({"refresh_token", "scope"})
    public_clients: ClassVar[bool] = True  # rotated on every use (RFC 9700 §4.14.2)
    blocking: ClassVar[bool] = True

    def issue(self, services: Services, request: TokenRequest) -> dict[str, Any]:
        token = request.get("refresh_token")
        if not token:
            raise InvalidRequest("missing refresh_token")  # RFC 6749 §6
        if len(token) > MAX_REFRESH_TOKEN:
            raise InvalidRequest("malformed refresh_token")
        client = request.client
        # RFC 6749 §6: a scope may only narrow what was granted; rotate() refuses anything wider.
        requested = policy.parse_scope(request.get("scope"))

        def mint(grant: GrantRecord, scope: str) -> Minted:
            user = active_user(services, grant.user_id)
            audience = policy.resolve_audience(
                client, request.resources, services.settings.audience, fallback=grant.audience
            )
            return mint_for_user(
                services,
                client,
                user_id=grant.user_id or "",
                scopes=scope.split(),
                audience=audience,
                auth_time=grant.auth_time,  # OIDC Core §12.2: the original authentication time
                acr=grant.acr,
                amr=grant.amr,
                sid=grant.sid,
                user=user,
                jkt=request.dpop_jkt,  # RFC 9449 §5: bound to the key of this request's proof
            )

        # RFC 9449 §5: a family bound to a key refreshes only with a proof by that key (rotate checks it).
        jkt = request.dpop_jkt
        return services.grants.rotate(token, client_id=client.client_id, scope=requested, mint=mint, jkt=jkt)
