"""End to end, web app: a confidential third-party client logs a person in with OpenID Connect through the
hosted login and consent pages, and validates the ID token against the published JWKS (joserfc)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import httpx
from authlib.common.security import generate_token
from joserfc import jwt as rfc_jwt
from joserfc.jwk import KeySet

from idp.services import Services
from tests.integration.test_e2e_native import browse, sign_in_on_page
from tests.oauthkit import ISSUER, AsyncOAuth2Client, make_user, query, web_client
from tests.pagekit import field


def validate_id_token(id_token: str, jwks: dict, *, client_id: str, nonce: str, access_token: str, now: float) -> dict:
    """What a relying party does (OIDC Core §3.1.3.7), with keys from the published JWKS only."""
    token = rfc_jwt.decode(id_token, KeySet.import_key_set(jwks), algorithms=["RS256"])
    claims = token.claims
    assert token.header["alg"] == "RS256" and token.header["kid"] in {k["kid"] for k in jwks["keys"]}
    assert claims["iss"] == ISSUER
    assert claims["aud"] == client_id or client_id in claims["aud"]
    assert claims["exp"] > now >= claims["iat"] - 30
    assert claims["nonce"] == nonce
    digest = hashlib.sha256(access_token.encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    return claims


async def test_web_app_oidc_login(app: Any, container: Services) -> None:
    user = make_user(container)
    web, secret = web_client(container, first_party=False, redirect_uris=["https://rp.example/cb"])
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url=ISSUER) as browser,
        AsyncOAuth2Client(
            client_id=web.client_id,
            client_secret=secret,
            token_endpoint_auth_method="client_secret_basic",
            redirect_uri="https://rp.example/cb",
            scope="openid profile email",
            code_challenge_method="S256",
            transport=transport,
        ) as rp,
    ):
        metadata = (await rp.request("GET", f"{ISSUER}/.well-known/openid-configuration", withhold_token=True)).json()
        nonce, verifier = generate_token(20), generate_token(64)
        url, state = rp.create_authorization_url(
            metadata["authorization_endpoint"], nonce=nonce, code_verifier=verifier
        )
        r = await browse(browser, url, until=f"{ISSUER}/login")
        r = await sign_in_on_page(browser, r.headers["location"], user.username)
        r = await browse(browser, f"{ISSUER}{r.headers['location']}", until=f"{ISSUER}/consent")
        consent = await browser.get(r.headers["location"])
        assert consent.status_code == 200 and "Web App" in consent.text  # the client's name is shown
        form = {
            "csrf": field(consent.text, "csrf"),
            "interaction": query(r.headers["location"])["interaction"],
            "decision": "allow",
        }
        r = await browser.post("/consent", data=form, headers={"origin": ISSUER})
        assert r.status_code == 303
        r = await browse(browser, f"{ISSUER}{r.headers['location']}", until="https://rp.example/cb")
        callback = r.headers["location"]
        assert query(callback)["iss"] == metadata["issuer"]  # RFC 9207 mix-up defence
        token = await rp.fetch_token(
            metadata["token_endpoint"], authorization_response=callback, code_verifier=verifier, state=state
        )
        jwks = (await rp.request("GET", metadata["jwks_uri"], withhold_token=True)).json()
        claims = validate_id_token(
            token["id_token"], jwks, client_id=web.client_id, nonce=nonce, access_token=token["access_token"],
            now=container.clock.now(),
        )  # fmt: skip
        assert claims["sub"] == user.id
        me = (await rp.get(metadata["userinfo_endpoint"])).json()
        assert me["sub"] == claims["sub"] and me["email"] == user.email
        assert "refresh_token" not in token  # third party without offline_access

        # A second login: consent is remembered, the session is reused, no pages.
        nonce2 = generate_token(20)
        url, state = rp.create_authorization_url(
            metadata["authorization_endpoint"], nonce=nonce2, code_verifier=verifier
        )
        r = await browser.get(url)
        assert r.status_code == 302 and r.headers["location"].startswith("https://rp.example/cb?code=")


async def test_denied_consent_returns_access_denied(app: Any, container: Services) -> None:
    user = make_user(container)
    web, _ = web_client(container, first_party=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as browser:
        rp = AsyncOAuth2Client(client_id=web.client_id, redirect_uri=web.redirect_uris[0], scope="openid",
                               code_challenge_method="S256")  # fmt: skip
        url, state = rp.create_authorization_url(f"{ISSUER}/authorize", code_verifier=generate_token(64))
        r = await browse(browser, url, until=f"{ISSUER}/login")
        r = await sign_in_on_page(browser, r.headers["location"], user.username)
        r = await browse(browser, f"{ISSUER}{r.headers['location']}", until=f"{ISSUER}/consent")
        consent = await browser.get(r.headers["location"])
        form = {"csrf": field(consent.text, "csrf"), "interaction": query(r.headers["location"])["interaction"],
                "decision": "deny"}  # fmt: skip
        r = await browser.post("/consent", data=form, headers={"origin": ISSUER})
        r = await browse(browser, f"{ISSUER}{r.headers['location']}", until=web.redirect_uris[0])
        q = query(r.headers["location"])
        assert q["error"] == "access_denied" and q["state"] == state and q["iss"] == ISSUER
        await rp.aclose()
