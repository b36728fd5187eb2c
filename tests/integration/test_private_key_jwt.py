"""private_key_jwt client authentication (RFC 7523 §3) with the RFC 9700 / FAPI tightening."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
from joserfc import jwt as rfc_jwt
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from idp.services import Services
from tests.oauthkit import ISSUER, AsyncOAuth2Client, basic, service_client

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_URL = f"{ISSUER}/token"


def _client(container: Services, key: Any) -> str:
    public = key.as_dict(private=False)
    svc, _ = service_client(container, auth_method="private_key_jwt", jwks={"keys": [public]})
    return svc.client_id


def _assertion(
    key: Any, client_id: str, now: float, alg: str = "ES256", header: dict | None = None, **claims: Any
) -> str:
    payload: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": ISSUER,
        "exp": int(now) + 120,
        "iat": int(now),
        "jti": secrets.token_urlsafe(12),
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return rfc_jwt.encode({"alg": alg, **(header or {"kid": key.kid})}, payload, key, algorithms=[alg])


async def _token(client: httpx.AsyncClient, assertion: str, **extra: str) -> httpx.Response:
    data = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        **extra,
    }
    return await client.post("/token", data=data)


@pytest.fixture
def ec_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "k1", "alg": "ES256", "use": "sig"})


async def test_valid_assertion_issuer_or_token_endpoint(
    client: httpx.AsyncClient, container: Services, ec_key: ECKey
) -> None:
    cid = _client(container, ec_key)
    now = container.clock.now()
    for aud in (ISSUER, TOKEN_URL):
        r = await _token(client, _assertion(ec_key, cid, now, aud=aud))
        assert r.status_code == 200, r.text
    r = await _token(client, _assertion(ec_key, cid, now), client_id=cid)  # a matching client_id is fine
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"aud": [ISSUER]}, "aud array"),
        ({"aud": [ISSUER, TOKEN_URL]}, "aud array"),
        ({"aud": f"{ISSUER}/introspect"}, "other endpoint"),
        ({"aud": "https://evil.example"}, "wrong aud"),
        ({"aud": None}, "no aud"),
        ({"sub": "someone-else"}, "sub != client_id"),
        ({"exp": None}, "no exp"),
        ({"exp": "soon"}, "exp not numeric"),
        ("expired", "expired"),
        ("far", "exp too far ahead"),
        ({"jti": None}, "no jti"),
        ({"nbf": "future"}, "nbf in the future"),
    ],
)
async def test_bad_claims_are_invalid_client(
    client: httpx.AsyncClient, container: Services, ec_key: ECKey, claims: Any, why: str
) -> None:
    cid = _client(container, ec_key)
    now = container.clock.now()
    if claims == "expired":
        claims = {"exp": int(now) - 120}
    elif claims == "far":
        claims = {"exp": int(now) + 3600 + 120}  # beyond IDP_CLIENT_ASSERTION_MAX_LIFETIME (3600) + leeway
    elif claims == {"nbf": "future"}:
        claims = {"nbf": int(now) + 600}
    r = await _token(client, _assertion(ec_key, cid, now, **claims))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", why


async def test_jti_is_single_use(client: httpx.AsyncClient, container: Services, ec_key: ECKey) -> None:
    cid = _client(container, ec_key)
    assertion = _assertion(ec_key, cid, container.clock.now())
    assert (await _token(client, assertion)).status_code == 200
    r = await _token(client, assertion)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"  # RFC 7523 §3 item 7


async def test_signature_and_key_rules(client: httpx.AsyncClient, container: Services, ec_key: ECKey) -> None:
    cid = _client(container, ec_key)
    now = container.clock.now()
    stranger = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    assert (await _token(client, _assertion(stranger, cid, now))).status_code == 401  # unregistered key
    r = await _token(client, _assertion(ec_key, cid, now, header={"kid": "unknown"}))
    assert r.status_code == 401
    r = await _token(client, _assertion(ec_key, cid, now, header={"kid": "k1", "jku": "https://evil/jwks"}))
    assert r.status_code == 401  # RFC 8725 §3.10: keys come from the registration only
    r = await _token(client, _assertion(ec_key, cid, now, header={}))  # no kid: the registered keys are tried
    assert r.status_code == 200


async def test_symmetric_and_none_algorithms_are_refused(
    client: httpx.AsyncClient, container: Services, ec_key: ECKey
) -> None:
    cid = _client(container, ec_key)
    now = container.clock.now()
    hs = OctKey.import_key(secrets.token_bytes(32))
    r = await _token(client, _assertion(hs, cid, now, alg="HS256", header={"kid": "k1"}))
    assert r.status_code == 401
    head = '{"alg":"none","typ":"JWT"}'
    body = f'{{"iss":"{cid}","sub":"{cid}","aud":"{ISSUER}","exp":{int(now) + 60},"jti":"x"}}'
    import base64

    enc = lambda s: base64.urlsafe_b64encode(s.encode()).rstrip(b"=").decode()  # noqa: E731
    r = await _token(client, f"{enc(head)}.{enc(body)}.")
    assert r.status_code == 401


@pytest.mark.parametrize("alg", ["RS256", "PS256", "EdDSA"])
async def test_other_allowed_algorithms(client: httpx.AsyncClient, container: Services, alg: str) -> None:
    params = {"kid": "k2", "alg": alg, "use": "sig"}
    key: Any = (
        OKPKey.generate_key("Ed25519", parameters=params)
        if alg == "EdDSA"
        else RSAKey.generate_key(2048, parameters=params)
    )
    cid = _client(container, key)
    r = await _token(client, _assertion(key, cid, container.clock.now(), alg=alg))
    assert r.status_code == 200, r.text


async def test_method_must_be_the_registered_one(client: httpx.AsyncClient, container: Services, ec_key: ECKey) -> None:
    svc, secret = service_client(container)  # a secret client
    r = await _token(client, _assertion(ec_key, svc.client_id, container.clock.now()))
    assert r.status_code == 401
    cid = _client(container, ec_key)  # a JWT client presenting a secret
    r = await client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(cid, "guess"))
    assert r.status_code == 401
    r = await _token(client, _assertion(ec_key, cid, container.clock.now()), client_id=svc.client_id)
    assert r.status_code == 401  # client_id disagrees with the assertion


class _Auth:
    """What Authlib's PrivateKeyJWT.sign reads from its client: the id and the key."""

    def __init__(self, client_id: str, key: Any) -> None:
        self.client_id, self.client_secret = client_id, key


@pytest.fixture
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "alg": "RS256", "use": "sig"})


async def test_authlibs_default_assertion_is_accepted(app: Any, container: Services, rsa_key: RSAKey) -> None:
    """Authlib's PrivateKeyJWT, unchanged: RS256, aud = the token endpoint, exp an hour ahead (RFC 7523 §3)."""
    from authlib.oauth2.rfc7523 import PrivateKeyJWT

    cid = _client(container, rsa_key)
    transport = httpx.ASGITransport(app=app)
    async with AsyncOAuth2Client(
        cid, rsa_key, token_endpoint_auth_method="private_key_jwt", transport=transport, base_url=ISSUER
    ) as oauth:
        oauth.register_client_auth_method(PrivateKeyJWT(TOKEN_URL))
        for _ in range(2):  # a fresh jti each time
            token = await oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")
            assert token["token_type"] == "Bearer" and token["access_token"]
    assertion = PrivateKeyJWT(TOKEN_URL).sign(_Auth(cid, rsa_key), TOKEN_URL)
    claims = rfc_jwt.decode(assertion, rsa_key).claims
    assert claims["exp"] - claims["iat"] == 3600  # what made it "live too long" before


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)  # the in-process store expires by FrozenClock
async def test_a_long_lived_assertion_stays_single_use_until_its_exp(
    client: httpx.AsyncClient, container: Services, ec_key: ECKey
) -> None:
    cid = _client(container, ec_key)
    now = container.clock.now()
    assertion = _assertion(ec_key, cid, now, exp=int(now) + 3600)
    assert (await _token(client, assertion)).status_code == 200
    container.clock.advance(3500)  # still valid: the jti must still be remembered
    r = await _token(client, assertion)
    assert r.status_code == 401 and r.json()["error_description"] == "client assertion replayed"
    container.clock.advance(200)  # expired now: refused for its exp, whatever the replay cache holds
    assert (await _token(client, assertion)).json()["error_description"] == "client assertion expired or without exp"


@pytest.mark.parametrize("settings_overrides", [{"client_assertion_max_lifetime": 300}])
async def test_the_lifetime_bound_is_configurable(
    client: httpx.AsyncClient, container: Services, ec_key: ECKey
) -> None:
    cid = _client(container, ec_key)
    now = container.clock.now()
    assert (await _token(client, _assertion(ec_key, cid, now, exp=int(now) + 300))).status_code == 200
    r = await _token(client, _assertion(ec_key, cid, now, exp=int(now) + 3600))
    assert r.status_code == 401 and "at most 300 s ahead" in r.json()["error_description"]


async def test_client_assertions_and_our_tokens_do_not_cross(
    client: httpx.AsyncClient, container: Services, ec_key: ECKey
) -> None:
    """RFC 8725 §3.11: an access token idp signed is no client assertion, and an assertion is no access token."""
    cid = _client(container, ec_key)
    assertion = _assertion(ec_key, cid, container.clock.now())
    r = await _token(client, assertion)
    assert r.status_code == 200, r.text
    access_token = r.json()["access_token"]
    r = await _token(client, access_token)  # signed by idp's key, typed at+jwt, aud the API: not the client's
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    fresh = _assertion(ec_key, cid, container.clock.now())
    r = await client.get("/userinfo", headers={"authorization": f"Bearer {fresh}"})
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
    other, secret = service_client(container)
    r = await client.post("/introspect", data={"token": fresh}, headers=basic(other.client_id, secret))
    assert r.status_code == 200 and r.json() == {"active": False}
