"""End to end, integrator: Authlib's OAuth2 client fetches client-credentials tokens (secret and private_key_jwt)
and a resource server verifies them with idp.resource against the published JWKS."""

from __future__ import annotations

import time
from typing import Any

import httpx
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import ECKey

from idp.resource import AccessTokenVerifier, JwksCache
from idp.services import Services
from tests.oauthkit import ISSUER, AsyncOAuth2Client, service_client

API = "https://api.example-corp.com"
TOKEN_URL = f"{ISSUER}/token"


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):
    """Authlib signs assertions valid for an hour by default; we accept at most five minutes (RFC 7523 §3)."""

    def sign(self, auth: Any, token_endpoint: str) -> str:
        self.claims = {"exp": int(time.time()) + 120}  # a fresh dict: Authlib stores the jti in it
        return super().sign(auth, token_endpoint)


async def _verifier(app: Any) -> AccessTokenVerifier:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER)
    return AccessTokenVerifier(issuer=ISSUER, audience=API, jwks=JwksCache(f"{ISSUER}/jwks.json", http))


async def test_client_secret_basic_with_authlib(app: Any, container: Services) -> None:
    svc, secret = service_client(container, audience=API)
    async with AsyncOAuth2Client(
        client_id=svc.client_id,
        client_secret=secret,
        token_endpoint_auth_method="client_secret_basic",
        scope="api:read",
        transport=httpx.ASGITransport(app=app),
    ) as rp:
        token = await rp.fetch_token(TOKEN_URL, grant_type="client_credentials")
    assert token["token_type"] == "Bearer" and token["scope"] == "api:read"
    verifier = await _verifier(app)
    _, claims = await verifier.verify(token["access_token"])
    assert claims["sub"] == svc.client_id and claims["aud"] == API and claims["scope"] == "api:read"


async def test_client_secret_post_with_authlib(app: Any, container: Services) -> None:
    svc, secret = service_client(container, audience=API, auth_method="client_secret_post")
    async with AsyncOAuth2Client(
        client_id=svc.client_id,
        client_secret=secret,
        token_endpoint_auth_method="client_secret_post",
        transport=httpx.ASGITransport(app=app),
    ) as rp:
        token = await rp.fetch_token(TOKEN_URL, grant_type="client_credentials")
    _, claims = await (await _verifier(app)).verify(token["access_token"])
    assert claims["scope"] == "api:read api:write"


async def test_private_key_jwt_with_authlib(app: Any, container: Services) -> None:
    key = ECKey.generate_key("P-256", parameters={"kid": "integrator-1", "alg": "ES256", "use": "sig"})
    svc, _ = service_client(
        container, audience=API, auth_method="private_key_jwt", jwks={"keys": [key.as_dict(private=False)]}
    )
    async with AsyncOAuth2Client(
        client_id=svc.client_id,
        client_secret=key,
        token_endpoint_auth_method=ShortLivedPrivateKeyJWT(TOKEN_URL, alg="ES256"),
        transport=httpx.ASGITransport(app=app),
    ) as rp:
        first = await rp.fetch_token(TOKEN_URL, grant_type="client_credentials")
        second = await rp.fetch_token(TOKEN_URL, grant_type="client_credentials")  # a new jti each time
    verifier = await _verifier(app)
    for token in (first, second):
        _, claims = await verifier.verify(token["access_token"])
        assert claims["client_id"] == svc.client_id
