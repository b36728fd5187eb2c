"""UserInfo (OIDC Core §5.3) and Bearer token transport (RFC 6750)."""

from __future__ import annotations

import httpx
import pytest

from idp.services import Services
from tests.oauthkit import FORM, basic, make_user, service_client, tokens_for, web_client


async def _token(client: httpx.AsyncClient, container: Services, scope: str, **user_kw: str) -> tuple[str, str]:
    web, secret = web_client(container)
    user = make_user(container, **user_kw)
    return (await tokens_for(container, client, web, secret, user, scope=scope))["access_token"], user.id


async def test_claims_by_scope(client: httpx.AsyncClient, container: Services) -> None:
    at, sub = await _token(client, container, "openid")
    r = await client.get("/userinfo", headers={"authorization": f"Bearer {at}"})
    assert r.status_code == 200 and r.json() == {"sub": sub}
    assert r.headers["cache-control"] == "no-store"
    at, sub = await _token(client, container, "openid profile email", username="bob")
    body = (await client.get("/userinfo", headers={"authorization": f"Bearer {at}"})).json()
    assert body == {
        "sub": sub, "preferred_username": "bob", "name": "Bob", "email": "bob@example.com", "email_verified": False
    }  # fmt: skip


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_scheme_is_case_insensitive(client: httpx.AsyncClient, container: Services, scheme: str) -> None:
    at, _ = await _token(client, container, "openid")
    r = await client.get("/userinfo", headers={"authorization": f"{scheme} {at}"})
    assert r.status_code == 200  # RFC 6750 §2.1


async def test_post_with_header_or_form_body(client: httpx.AsyncClient, container: Services) -> None:
    at, sub = await _token(client, container, "openid")
    r = await client.post("/userinfo", headers={"authorization": f"Bearer {at}"})
    assert r.status_code == 200 and r.json()["sub"] == sub
    r = await client.post("/userinfo", data={"access_token": at})
    assert r.status_code == 200 and r.json()["sub"] == sub  # RFC 6750 §2.2
    r = await client.post("/userinfo", data={"access_token": at}, headers={"authorization": f"Bearer {at}"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"  # one method only


async def test_never_in_the_query_string(client: httpx.AsyncClient, container: Services) -> None:
    at, _ = await _token(client, container, "openid")
    r = await client.get("/userinfo", params={"access_token": at})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert 'error="invalid_request"' in r.headers["www-authenticate"]


async def test_missing_and_invalid_tokens(client: httpx.AsyncClient, container: Services) -> None:
    r = await client.get("/userinfo")
    # RFC 6750 §3.1 and RFC 9449 §7.1: a bare challenge for each scheme accepted
    challenges = 'Bearer realm="idp", DPoP algs="ES256 RS256 PS256 EdDSA Ed25519"'
    assert r.status_code == 401 and r.headers["www-authenticate"] == challenges
    for value in ("Bearer nope", "Bearer a.b.c", "Basic Zm9vOmJhcg==", "Bearer "):
        r = await client.get("/userinfo", headers={"authorization": value})
        assert r.status_code == 401, value
        assert (
            r.headers["www-authenticate"].startswith("Bearer ")
            and 'error="invalid_token"' in r.headers["www-authenticate"]
        )


async def test_expired_token(client: httpx.AsyncClient, container: Services) -> None:
    at, _ = await _token(client, container, "openid")
    container.clock.advance(container.settings.access_token_ttl + 60)
    r = await client.get("/userinfo", headers={"authorization": f"Bearer {at}"})
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_without_openid_scope_is_insufficient_scope(client: httpx.AsyncClient, container: Services) -> None:
    # Registration refuses the issuer as an API audience, so mint the token such a client would have had.
    web, _ = web_client(container, scope="openid api")
    minted = container.access_tokens.issue(
        client_id=web.client_id, sub=make_user(container).id, audience=[container.settings.issuer], scope="api"
    )
    r = await client.get("/userinfo", headers={"authorization": f"Bearer {minted.token}"})
    assert r.status_code == 403 and 'error="insufficient_scope"' in r.headers["www-authenticate"]


async def test_api_tokens_are_not_for_userinfo(client: httpx.AsyncClient, container: Services) -> None:
    svc, secret = service_client(container)
    r = await client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(svc.client_id, secret))
    at = r.json()["access_token"]
    r = await client.get("/userinfo", headers={"authorization": f"Bearer {at}"})
    assert r.status_code == 401  # aud is the API, not the issuer


async def test_deny_listed_and_disabled(client: httpx.AsyncClient, container: Services) -> None:
    at, _ = await _token(client, container, "openid")
    jti = container.access_tokens.verify(at, audience=None)[1]["jti"]
    container.denylist.deny("jti", jti, reason="test", actor="test", until=container.clock.now() + 600)
    r = await client.get("/userinfo", headers={"authorization": f"Bearer {at}"})
    assert r.status_code == 401
    at, _ = await _token(client, container, "openid", username="carol")
    container.directory.set_disabled("carol", True)
    r = await client.get("/userinfo", headers={"authorization": f"Bearer {at}"})
    assert r.status_code == 401


async def test_malformed_post_bodies(client: httpx.AsyncClient) -> None:
    r = await client.post("/userinfo", content=b"\xff", headers=FORM)
    assert r.status_code == 400
    r = await client.post("/userinfo", content=b"access_token=a&access_token=b", headers=FORM)
    assert r.status_code == 400


@pytest.mark.parametrize("change", ["disable", "delete"])
async def test_a_token_of_a_disabled_or_deleted_client_is_refused_at_once(
    client: httpx.AsyncClient, container: Services, change: str
) -> None:
    web, secret = web_client(container)
    at = (await tokens_for(container, client, web, secret, make_user(container), scope="openid"))["access_token"]
    assert (await client.get("/userinfo", headers={"authorization": f"Bearer {at}"})).status_code == 200
    # The registry alone, no deny-list entry: userinfo asks whether the client still exists and is enabled.
    if change == "disable":
        container.clients.update(web.client_id, disabled=True)
    else:
        container.clients.delete(web.client_id)
    r = await client.get("/userinfo", headers={"authorization": f"Bearer {at}"})
    assert r.status_code == 401 and "no longer active" in r.headers["www-authenticate"]
