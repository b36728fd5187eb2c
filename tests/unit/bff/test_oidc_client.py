"""The BFF's sign-in against a scripted OP (httpx.MockTransport): what it sends (PKCE S256, nonce,
client_secret_basic) and which token responses and ID tokens it refuses."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager
from joserfc import jwt
from joserfc.jwk import RSAKey

from idp.bff.app import create_bff_app
from idp.bff.config import load_bff_settings

ISSUER = "https://op.example"
ORIGIN = "https://app.example"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256", "use": "sig"})
OTHER = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256", "use": "sig"})


class OP:
    """Discovery, JWKS and a token endpoint whose ID token the test shapes."""

    def __init__(self) -> None:
        self.token_requests: list[httpx.Request] = []
        self.shape: Callable[[dict[str, Any]], dict[str, Any]] = lambda c: c
        self.key = KEY
        self.nonce = ""
        self.iss_supported = True

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={
                "issuer": ISSUER, "authorization_endpoint": f"{ISSUER}/authorize", "token_endpoint": f"{ISSUER}/token",
                "jwks_uri": f"{ISSUER}/jwks", "userinfo_endpoint": f"{ISSUER}/userinfo",
                "end_session_endpoint": f"{ISSUER}/logout", "id_token_signing_alg_values_supported": ["RS256"],
                "authorization_response_iss_parameter_supported": self.iss_supported,
            })  # fmt: skip
        if path == "/jwks":
            return httpx.Response(200, json={"keys": [KEY.as_dict(private=False)]})
        if path == "/userinfo":
            return httpx.Response(200, json={"sub": "user-1", "email": "a@example.com", "name": "Alice"})
        if path == "/token":
            self.token_requests.append(request)
            now = int(time.time())
            claims = {"iss": ISSUER, "aud": "bff", "sub": "user-1", "iat": now, "exp": now + 300,
                      "nonce": self.nonce, "sid": "sid-1"}  # fmt: skip
            id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, self.shape(claims), self.key)
            body = {"access_token": "AT-secret", "token_type": "Bearer", "expires_in": 600,
                    "refresh_token": "RT-secret", "id_token": id_token, "scope": "openid"}  # fmt: skip
            return httpx.Response(200, json=body)
        return httpx.Response(404)


@pytest.fixture
def op() -> OP:
    return OP()


@pytest.fixture
async def browser(op: OP) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_bff_settings(
        issuer=ISSUER, client_id="bff", client_secret="s3cret:/+", origin=ORIGIN, same_site="strict",
        encryption_key=base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode(),
    )  # fmt: skip
    app = create_bff_app(settings, transport=httpx.MockTransport(op.handler))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url=ORIGIN) as c,
    ):
        yield c


async def start(browser: httpx.AsyncClient, op: OP) -> dict[str, str]:
    r = await browser.get("/bff/login")
    assert r.status_code == 302
    q = {k: v[0] for k, v in parse_qs(urlsplit(r.headers["location"]).query).items()}
    op.nonce = q["nonce"]
    return q


async def test_sign_in_sends_pkce_and_basic_auth(browser: httpx.AsyncClient, op: OP) -> None:
    q = await start(browser, op)
    assert q["code_challenge_method"] == "S256" and q["response_type"] == "code" and q["client_id"] == "bff"
    r = await browser.get("/bff/callback", params={"code": "C", "state": q["state"], "iss": ISSUER})
    assert r.status_code == 303, r.text
    (sent,) = op.token_requests
    form = parse_qs(sent.content.decode())
    verifier = form["code_verifier"][0]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert challenge == q["code_challenge"]  # RFC 7636 §4.6
    assert "client_secret" not in form
    scheme, _, creds = sent.headers["authorization"].partition(" ")
    assert scheme == "Basic" and base64.b64decode(creds).decode() in ("bff:s3cret%3A%2F%2B", "bff:s3cret:/+")
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("__Host-bff="))
    assert "samesite=strict" in cookie.lower()
    assert "AT-secret" not in r.text + str(r.headers) and "RT-secret" not in r.text + str(r.headers)
    me = await browser.get("/bff/user")
    assert me.json()["claims"] == {"sub": "user-1", "email": "a@example.com", "name": "Alice"}
    # The state is single use: the same callback again is refused.
    again = await browser.get("/bff/callback", params={"code": "C", "state": q["state"], "iss": ISSUER})
    assert again.status_code == 400


@pytest.mark.parametrize(
    "shape",
    [
        lambda c: {**c, "aud": "someone-else"},
        lambda c: {**c, "iss": "https://evil.example"},
        lambda c: {**c, "exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
        lambda c: {**c, "nonce": "another"},
        lambda c: {k: v for k, v in c.items() if k != "nonce"},
        lambda c: {k: v for k, v in c.items() if k != "sub"},
    ],
    ids=["aud", "iss", "exp", "nonce", "no-nonce", "no-sub"],
)
async def test_bad_id_tokens_are_refused(browser: httpx.AsyncClient, op: OP, shape: Any) -> None:
    op.shape = shape
    q = await start(browser, op)
    r = await browser.get("/bff/callback", params={"code": "C", "state": q["state"], "iss": ISSUER})
    assert r.status_code == 400, r.text
    assert not any(c.startswith("__Host-bff=") for c in r.headers.get_list("set-cookie"))
    assert (await browser.get("/bff/user")).status_code == 401


async def test_id_token_signed_by_another_key(browser: httpx.AsyncClient, op: OP) -> None:
    op.key = OTHER
    q = await start(browser, op)
    r = await browser.get("/bff/callback", params={"code": "C", "state": q["state"], "iss": ISSUER})
    assert r.status_code == 400


async def test_iss_parameter_required_when_advertised(browser: httpx.AsyncClient, op: OP) -> None:
    q = await start(browser, op)
    r = await browser.get("/bff/callback", params={"code": "C", "state": q["state"]})  # RFC 9207 §2.4
    assert r.status_code == 400 and op.token_requests == []  # refused before the code is redeemed


async def test_error_response_is_answered_400(browser: httpx.AsyncClient, op: OP) -> None:
    q = await start(browser, op)
    r = await browser.get("/bff/callback", params={"error": "access_denied", "state": q["state"], "iss": ISSUER})
    assert r.status_code == 400 and r.json()["error"] == "access_denied"
    assert json.loads(r.text)["error_description"]
