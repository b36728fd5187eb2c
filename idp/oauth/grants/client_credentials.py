"""The client credentials grant (RFC 6749 §4.4): confidential clients only, no refresh token.

Pure computation once the client is authenticated (a cached client and a keyed hash of its secret), so
the token endpoint may run it on the event loop.
"""

from __future__ import annotations

from typing import Any, ClassVar

from idp.oauth import policy
from idp.oauth.grants.common import token_body
from idp.oauth.token.request import TokenRequest
from idp.services import Services


class ClientCredentialsGrant:
    grant_type: ClassVar[str] = "client_credentials"
    parameters: ClassVar[frozenset[str]] = frozenset({"scope"})
    public_clients: ClassVar[bool] = False  # RFC 6749 §4.4: confidential clients only
    blocking: ClassVar[bool] = False

    def issue(self, services: Services, request: TokenRequest) -> dict[str, Any]:
        client = request.client
        scopes = policy.resolve_scope(client, request.get("scope"))
        audience = policy.resolve_audience(client, request.resources, services.settings.audience)
        tokens = services.access_tokens
        at = tokens.issue(
            client_id=client.client_id,
            sub=client.client_id,  # RFC 9068 §2.2: no resource owner, so sub names the client
            audience=[audience],
            scope=" ".join(scopes),
            alg=policy.access_token_alg(client, services.settings.access_token_alg),
            jkt=request.dpop_jkt,  # RFC 9449 §5
        )
        return token_body(at, tokens.ttl, scopes)
