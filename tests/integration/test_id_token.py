"""ID tokens (OIDC Core §2, §3.1.3.6): claims, algorithms, nonce, at_hash, verification against the JWKS."""

from __future__ import annotations

import base64
import hashlib

import httpx
import orjson
import pytest
from joserfc import jwt as rfc_jwt
from joserfc.jwk import KeySet

from idp.services import Services
from tests.oauthkit import ISSUER, make_user, refresh, tokens_for, web_client


def _header(token: str) -> dict:
    h = token.split(".")[0]
    return orjson.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)))


async def _verify(client: httpx.AsyncClient, token: str) -> dict:
    keys = KeySet.import_key_set((await client.get("/jwks.json")).json())
    alg = _header(token)["alg"]
    return rfc_jwt.decode(token, keys, algorithms=[alg]).claims


async def test_claims_and_default_rs256(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    user = make_user(container)
    t = await tokens_for(container, client, web, secret, user, scope="openid profile", nonce="n-0S6_WzA2Mj")
    header = _header(t["id_token"])
    assert header["alg"] == "RS256" and header["kid"] and header["typ"] == "JWT"  # OIDC Core §15.1
    claims = await _verify(client, t["id_token"])
    assert claims["iss"] == ISSUER and claims["aud"] == web.client_id
    assert claims["sub"] == user.id and claims["sub"] != user.username  # stable, not the username
    assert claims["nonce"] == "n-0S6_WzA2Mj"  # echoed unmodified
    assert claims["exp"] - claims["iat"] == container.settings.id_token_ttl
    assert abs(claims["auth_time"] - container.clock.now()) <= 1
    assert claims["sid"] and claims["acr"] == "urn:idp:acr:sfa" and claims["amr"] == ["pwd"]
    digest = hashlib.sha256(t["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("settings_overrides", "alg"),
    [({}, "ES256"), ({"id_token_alg": "EdDSA"}, "EdDSA")],  # an EdDSA key exists when a default uses it
)
async def test_per_client_algorithm(client: httpx.AsyncClient, container: Services, alg: str) -> None:
    web, secret = web_client(container, id_token_alg=alg)
    t = await tokens_for(container, client, web, secret, make_user(container))
    assert _header(t["id_token"])["alg"] == alg
    claims = await _verify(client, t["id_token"])
    hashed = (hashlib.sha512 if alg == "EdDSA" else hashlib.sha256)(t["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(hashed[: len(hashed) // 2]).rstrip(b"=").decode()


async def test_no_nonce_no_claim_and_plain_oauth_has_no_id_token(
    client: httpx.AsyncClient, container: Services
) -> None:
    web, secret = web_client(container, scope="openid profile api")
    user = make_user(container)
    t = await tokens_for(container, client, web, secret, user)
    assert "nonce" not in await _verify(client, t["id_token"])
    t = await tokens_for(container, client, web, secret, user, scope="api")
    assert "id_token" not in t


async def test_refresh_keeps_original_auth_time_and_drops_nonce(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    t0 = await tokens_for(
        container, client, web, secret, make_user(container), scope="openid offline_access", nonce="n1"
    )
    first = await _verify(client, t0["id_token"])
    container.clock.advance(120)
    t1 = (await refresh(client, web, secret, t0["refresh_token"])).json()
    again = await _verify(client, t1["id_token"])
    assert again["auth_time"] == first["auth_time"]  # OIDC Core §12.2
    assert again["iat"] > first["iat"] and "nonce" not in again
    assert again["sub"] == first["sub"] and again["sid"] == first["sid"]


async def test_id_token_is_not_an_access_token(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    t = await tokens_for(container, client, web, secret, make_user(container))
    r = await client.get("/userinfo", headers={"authorization": f"Bearer {t['id_token']}"})
    assert r.status_code == 401  # RFC 8725 §3.11: typ JWT is not at+jwt


async def test_user_access_token_claims(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container, audience="https://api.rp.example")
    user = make_user(container)
    t = await tokens_for(container, client, web, secret, user, scope="openid profile")
    header, claims = container.access_tokens.verify(t["access_token"], audience=ISSUER)
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    assert claims["sub"] == user.id and claims["client_id"] == web.client_id
    assert claims["aud"] == ["https://api.rp.example", ISSUER]  # openid: userinfo is an audience too
    assert claims["scope"] == "openid profile"
    assert {"auth_time", "acr", "sid", "jti", "iat", "exp"} <= set(claims)
    assert "email" not in claims and "name" not in claims  # RFC 9068 §6: no personal data


PERSON = {"name", "preferred_username", "email", "email_verified"}


async def test_profile_and_email_claims_only_for_clients_that_opt_in(
    client: httpx.AsyncClient, container: Services
) -> None:
    """OIDC Core §5.4 puts them in userinfo; ``claims_in_id_token`` adds the granted ones to the ID token."""
    user = make_user(container)
    plain, plain_secret = web_client(container)
    t = await tokens_for(container, client, plain, plain_secret, user, scope="openid profile email")
    assert not PERSON & set(await _verify(client, t["id_token"]))
    opted, secret = web_client(container, claims_in_id_token=True)
    t = await tokens_for(container, client, opted, secret, user, scope="openid profile email offline_access")
    claims = await _verify(client, t["id_token"])
    assert {k: claims[k] for k in PERSON} == {
        "name": user.name, "preferred_username": user.username, "email": user.email, "email_verified": False
    }  # fmt: skip
    userinfo = (await client.get("/userinfo", headers={"authorization": f"Bearer {t['access_token']}"})).json()
    assert {k: userinfo[k] for k in PERSON} == {k: claims[k] for k in PERSON}  # the same values in both
    r = await refresh(client, opted, secret, t["refresh_token"])
    assert set(await _verify(client, r.json()["id_token"])) >= PERSON  # the refreshed ID token too
    r = await refresh(client, opted, secret, r.json()["refresh_token"], scope="openid profile")  # narrowed
    narrowed = await _verify(client, r.json()["id_token"])
    assert "name" in narrowed and "email" not in narrowed and "email_verified" not in narrowed


async def test_only_the_granted_scopes_claims(client: httpx.AsyncClient, container: Services) -> None:
    opted, secret = web_client(container, claims_in_id_token=True)
    user = make_user(container)
    t = await tokens_for(container, client, opted, secret, user, scope="openid email")
    claims = await _verify(client, t["id_token"])
    assert claims["email"] == user.email and "name" not in claims and "preferred_username" not in claims
    claims = await _verify(client, (await tokens_for(container, client, opted, secret, user))["id_token"])
    assert "name" in claims and "email" not in claims  # auth_params asks for "openid profile"
