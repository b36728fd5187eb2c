"""The client credentials grant (RFC 6749 §4.4): confidential clients only, no refresh token.

Pure computation once the client is authenticated (a cached client and a keyed
hash of its secret), so the token endpoint runs it on the event loop.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.hooks import hooked

from idp.clients.model import AUTH_METHODS
from idp.errors import UnauthorizedClient
from idp.oauth import policy
from idp.oauth.grants.common import JSON_HEADERS, access_tokens, token_body


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)

    def validate_token_request(self) -> None:
        oauth_client = self.authenticate_token_endpoint_client()
        client = oauth_client.client
        if client.is_public:
            raise UnauthorizedClient("public clients cannot use client_credentials")  # RFC 6749 §4.4
        if not client.allows_grant(self.GRANT_TYPE):
            raise UnauthorizedClient("the client is not registered for client_credentials")  # ASVS V10.4.4
        self.request.client = oauth_client
        c = self.server.c
        self.scopes = policy.resolve_scope(client, self.request.payload.scope)
        self.audience = policy.resolve_audience(client, self.request.resources, c.settings.audience)

    @hooked
    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        c = self.server.c
        client = self.request.client.client
        tokens = access_tokens(c)
        at = tokens.issue(
            client_id=client.client_id,
            sub=client.client_id,  # RFC 9068 §2.2: no resource owner, so sub names the client
            audience=[self.audience],
            scope=" ".join(self.scopes),
            alg=policy.access_token_alg(client, c.settings.access_token_alg),
        )
        return 200, token_body(at, tokens.ttl, self.scopes), JSON_HEADERS
