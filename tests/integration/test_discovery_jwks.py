"""RFC 8414 / OIDC Discovery metadata and the JWKS endpoint."""

from __future__ import annotations

import httpx

from idp.services import Services
from tests.conftest import ISSUER

PUBLIC = {"kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"}


async def test_both_metadata_documents_agree_and_match_the_issuer(client: httpx.AsyncClient) -> None:
    oidc = (await client.get("/.well-known/openid-configuration")).json()
    oauth = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert oidc == oauth
    assert oidc["issuer"] == ISSUER
    assert oidc["response_types_supported"] == ["code"]  # no implicit or hybrid
    assert oidc["code_challenge_methods_supported"] == ["S256"]  # no plain
    assert "password" not in oidc["grant_types_supported"]
    assert "implicit" not in oidc["grant_types_supported"]
    assert "RS256" in oidc["id_token_signing_alg_values_supported"]
    assert oidc["authorization_response_iss_parameter_supported"] is True
    for field in ("authorization_endpoint", "token_endpoint", "jwks_uri", "subject_types_supported"):
        assert field in oidc
    assert oidc["jwks_uri"] == f"{ISSUER}/jwks.json"
    assert not any(a.startswith("HS") or a == "none" for a in oidc["id_token_signing_alg_values_supported"])


async def test_jwks_is_public_cacheable_and_conditional(client: httpx.AsyncClient, container: Services) -> None:
    r = await client.get("/jwks.json")
    assert r.status_code == 200
    assert r.headers["cache-control"] == f"public, max-age={container.settings.jwks_max_age}"
    etag = r.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")  # strong
    keys = r.json()["keys"]
    assert {k["alg"] for k in keys} >= {"ES256", "RS256"}
    for k in keys:
        assert set(k) <= PUBLIC, "private members must never be published"
        assert k["kid"] and k["use"] == "sig"
    again = await client.get("/jwks.json", headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag


async def test_jwks_etag_changes_when_a_key_is_published(client: httpx.AsyncClient, container: Services) -> None:
    first = await client.get("/jwks.json")
    nxt = container.keyring.rotate("ES256")
    second = await client.get("/jwks.json", headers={"if-none-match": first.headers["etag"]})
    assert second.status_code == 200
    assert nxt.kid in {k["kid"] for k in second.json()["keys"]}


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready"


async def test_readiness_reports_an_unreachable_store(client: httpx.AsyncClient, container: Services) -> None:
    container.ephemeral.ping = lambda: False  # type: ignore[method-assign]
    r = await client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["status"] == "unavailable" and r.json()["reasons"]


async def test_unknown_path_and_method(client: httpx.AsyncClient) -> None:
    assert (await client.get("/nope")).status_code == 404
    assert (await client.post("/jwks.json")).status_code == 405


async def test_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    r = await client.post("/healthz", content=b"x" * (65 * 1024))
    assert r.status_code == 413
    assert r.json()["error"] == "invalid_request"
