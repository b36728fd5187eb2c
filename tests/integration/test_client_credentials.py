"""Client credentials (RFC 6749 §4.4) and the RFC 9068 access token it yields."""

from __future__ import annotations

import base64

import httpx
import orjson
import pytest

from idp.services import Services
from idp.tokens import jwt
from tests.oauthkit import ISSUER, basic, native_client, post_pairs, service_client, web_client


def _parts(token: str) -> tuple[dict, dict]:
    h, p, _ = token.split(".")
    dec = lambda s: orjson.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))  # noqa: E731
    return dec(h), dec(p)


async def test_secret_basic_yields_an_rfc9068_token(client: httpx.AsyncClient, container: Services) -> None:
    svc, secret = service_client(container, audience="https://api.example")
    r = await client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(svc.client_id, secret))
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == container.settings.access_token_ttl
    assert "refresh_token" not in body  # RFC 6749 §4.4.3
    header, claims = _parts(body["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256" and header["kid"]
    assert claims["iss"] == ISSUER and claims["sub"] == svc.client_id and claims["client_id"] == svc.client_id
    assert claims["aud"] == "https://api.example"
    assert claims["exp"] - claims["iat"] == container.settings.access_token_ttl
    assert claims["scope"] == "api:read api:write" and claims["jti"]
    assert set(claims) == {"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"}  # nothing more
    # It verifies with the published key, as an access token only.
    _, verified = container.access_tokens.verify(body["access_token"], audience="https://api.example")
    assert verified == claims
    with pytest.raises(jwt.TokenInvalid):
        container.id_tokens.verify(body["access_token"], client_id=svc.client_id)


async def test_secret_post_and_scope_subset(client: httpx.AsyncClient, container: Services) -> None:
    svc, secret = service_client(container, auth_method="client_secret_post")
    data = {"grant_type": "client_credentials", "client_id": svc.client_id, "client_secret": secret}
    r = await client.post("/token", data=data | {"scope": "api:read"})
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "api:read"
    _, claims = _parts(r.json()["access_token"])
    assert claims["aud"] == f"{ISSUER}/api"  # the server default audience
    # Basic is not this client's method: one method per client.
    r = await client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(svc.client_id, secret))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


async def test_scope_outside_registration_is_invalid_scope(client: httpx.AsyncClient, container: Services) -> None:
    svc, secret = service_client(container)
    r = await client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "api:read admin"},
        headers=basic(svc.client_id, secret),
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"


async def test_resource_indicator_selects_the_audience(client: httpx.AsyncClient, container: Services) -> None:
    svc, secret = service_client(container, audience="https://a.example https://b.example")
    auth = basic(svc.client_id, secret)
    r = await client.post("/token", data={"grant_type": "client_credentials"}, headers=auth)
    assert _parts(r.json()["access_token"])[1]["aud"] == "https://a.example"
    r = await client.post(
        "/token", data={"grant_type": "client_credentials", "resource": "https://b.example"}, headers=auth
    )
    assert _parts(r.json()["access_token"])[1]["aud"] == "https://b.example"
    for bad in (["https://evil.example"], ["https://a.example", "https://b.example"]):
        r = await post_pairs(
            client, "/token", [("grant_type", "client_credentials"), *[("resource", x) for x in bad]], auth
        )
        assert r.status_code == 400 and r.json()["error"] == "invalid_target", bad  # RFC 8707 §2


async def test_wrong_or_missing_credentials(client: httpx.AsyncClient, container: Services) -> None:
    svc, secret = service_client(container)
    r = await client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(svc.client_id, "nope"))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.headers["www-authenticate"].startswith("Basic")  # RFC 6749 §5.2
    assert r.headers["cache-control"] == "no-store"
    r = await client.post("/token", data={"grant_type": "client_credentials", "client_id": svc.client_id})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert "www-authenticate" not in r.headers
    r = await client.post("/token", data={"grant_type": "client_credentials"}, headers=basic("ghost", "x"))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


async def test_disabled_client_is_refused_even_when_hot(client: httpx.AsyncClient, container: Services) -> None:
    svc, secret = service_client(container)
    auth = basic(svc.client_id, secret)
    for _ in range(2):  # the second request takes the inline (cached) path
        assert (await client.post("/token", data={"grant_type": "client_credentials"}, headers=auth)).status_code == 200
    container.client_admin.set_disabled(svc.client_id, True, actor="test")
    r = await client.post("/token", data={"grant_type": "client_credentials"}, headers=auth)
    assert r.status_code == 401


async def test_rotated_secret_takes_effect_at_once(client: httpx.AsyncClient, container: Services) -> None:
    svc, secret = service_client(container)
    for _ in range(2):
        r = await client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(svc.client_id, secret))
        assert r.status_code == 200
    new = container.clients.rotate_secret(svc.client_id)
    r = await client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(svc.client_id, secret))
    assert r.status_code == 401
    r = await client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(svc.client_id, new))
    assert r.status_code == 200


async def test_public_and_code_clients_cannot_use_client_credentials(
    client: httpx.AsyncClient, container: Services
) -> None:
    native = native_client(container)
    r = await client.post("/token", data={"grant_type": "client_credentials", "client_id": native.client_id})
    assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"  # RFC 6749 §4.4
    web, secret = web_client(container)
    r = await client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(web.client_id, secret))
    assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"  # ASVS V10.4.4


async def test_rs256_per_client(client: httpx.AsyncClient, container: Services) -> None:
    svc, secret = service_client(container, access_token_alg="RS256")
    r = await client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(svc.client_id, secret))
    token = r.json()["access_token"]
    assert _parts(token)[0]["alg"] == "RS256"  # RFC 9068 §2.1: RS256 must be available
    container.access_tokens.verify(token, audience=f"{ISSUER}/api")


def test_token_byte_budget(container: Services) -> None:
    """A client-credentials token with a 30-char issuer, a 30-char audience and two scopes fits 450 bytes."""
    issuer, audience = "https://login.example-corp.com", "https://api.example-corp.com/v"
    assert len(issuer) == 30 and len(audience) == 30
    container.keyring.tick()
    tokens = type(container.access_tokens)(
        container.keyring, container.clock, issuer=issuer, ttl=600, default_alg="ES256"
    )
    svc, _ = container.clients.create(name="Reports", kind="service", scope="api:read api:write", audience=audience)
    cid = svc.client_id  # as generated by the registry
    issued = tokens.issue(client_id=cid, sub=cid, audience=[audience], scope="api:read api:write")
    assert len(issued.token.encode()) <= 450, len(issued.token)
