"""The OAuth 2.1 / OpenID Connect protocol features: the token endpoint and its grants, userinfo; the purge
of dead refresh-token families."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager

from idp.config import Settings
from idp.feature import Feature
from idp.oauth import endpoints
from idp.oauth.grants.authorization_code import AuthorizationCodeGrant
from idp.oauth.grants.client_credentials import ClientCredentialsGrant
from idp.oauth.grants.refresh_token import RefreshTokenGrant
from idp.oauth.grants.token_exchange import TokenExchangeGrant
from idp.resource.dpop import ALGS as DPOP_ALGS
from idp.services import Services
from idp.sessions import assurance
from idp.tasks import every

SCOPES = ["openid", "profile", "email", "offline_access"]
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
# private_key_jwt's assertion algorithms, the same at every endpoint (RFC 8414 §2 asks for each endpoint's list).
ASSERTION_SIGNING_ALGS = ["ES256", "RS256", "PS256", "EdDSA"]
PURGE_SECONDS = 60.0


def _authorization_metadata(settings: Settings) -> Mapping[str, object]:
    issuer = settings.issuer
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
        "token_endpoint_auth_methods_supported": [*CLIENT_AUTH_METHODS, "none"],
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_SIGNING_ALGS,
        "code_challenge_methods_supported": ["S256"],
        "dpop_signing_alg_values_supported": list(DPOP_ALGS),  # RFC 9449 §5.1
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "acr",
            "amr",
            "sid",
            "at_hash",
            "name",
            "preferred_username",
            "email",
            "email_verified",
        ],
        "acr_values_supported": list(assurance.SUPPORTED),  # OIDC Discovery §3; idp.sessions.assurance
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
    }


TOKEN = Feature(
    name="token",
    routes=endpoints.routes,
    grants=(AuthorizationCodeGrant(), RefreshTokenGrant(), ClientCredentialsGrant(), TokenExchangeGrant()),
    metadata=_authorization_metadata,
    cors={"/token": "POST", "/userinfo": "GET, POST"},
)
"""The token endpoint over the app's grants (RFC 6749 §3.2), the three grants of OAuth 2.1 and token exchange
(RFC 8693), and UserInfo
(OIDC Core §5.3); its discovery fields cover the authorization endpoint too (one protocol description)."""


def _purge(services: Services) -> AbstractAsyncContextManager[None]:
    return every(PURGE_SECONDS, services.grants.purge, name="grant purge")


GRANT_PURGE = Feature(name="grant purge", tasks=(_purge,))
"""Drops sealed grace copies and long-dead grants. The sealed successor kept for the refresh grace window
is also dropped as soon as that successor is used; this sweep bounds how long an unused one survives
(window + ``PURGE_SECONDS``)."""
