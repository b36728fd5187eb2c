"""The back-channel logout receiver's checks (BCL §2.6), each one alone, against keys served as a JWKS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

from idp.bff.backchannel import EVENT, LogoutTokenInvalid, LogoutTokenVerifier
from idp.bff.sealing import SessionCrypto
from idp.bff.stores.memory import MemorySessionStore
from idp.clock import FrozenClock
from idp.resource.jwks import JwksCache

ISSUER = "https://idp.example"
CLIENT = "bff-client"
RSA = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "alg": "RS256", "use": "sig"})
EC = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "alg": "ES256", "use": "sig"})
STRANGER = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "alg": "RS256"})  # same kid, another key
RSA_ANY_ALG = RSAKey.import_key({k: v for k, v in RSA.as_dict(private=True).items() if k != "alg"})


def jwks_transport() -> httpx.MockTransport:
    keys = [RSA.as_dict(private=False), EC.as_dict(private=False)]
    return httpx.MockTransport(lambda request: httpx.Response(200, json={"keys": keys}))


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(float(int(time.time())))


@pytest.fixture
async def verifier(clock: FrozenClock) -> Any:
    http = httpx.AsyncClient(transport=jwks_transport())
    store = MemorySessionStore(SessionCrypto(secrets.token_bytes(32)), clock)
    yield LogoutTokenVerifier(
        issuer=ISSUER, client_id=CLIENT, jwks=JwksCache(f"{ISSUER}/jwks", http), store=store, clock=clock
    )
    await http.aclose()


def claims(clock: FrozenClock, **kw: Any) -> dict[str, Any]:
    now = int(clock.now())
    body = {"iss": ISSUER, "aud": CLIENT, "iat": now, "exp": now + 120, "jti": secrets.token_urlsafe(12),
            "events": {EVENT: {}}, "sid": "sid-1", "sub": "user-1"}  # fmt: skip
    body.update(kw)
    return {k: v for k, v in body.items() if v is not None}


def sign(body: dict[str, Any], *, key: Any = RSA, alg: str = "RS256", **header: Any) -> str:
    head = {"alg": alg, "typ": "logout+jwt", "kid": key.kid if hasattr(key, "kid") else "x", **header}
    head = {k: v for k, v in head.items() if v is not None}
    return jws.serialize_compact(head, json.dumps(body).encode(), key, algorithms=[alg])


def hs256(body: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'logout+jwt', 'kid': 'rsa-1'})}.{b64(body)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_valid_tokens(verifier: Any, clock: FrozenClock) -> None:
    got = await verifier.verify(sign(claims(clock)))
    assert got.sid == "sid-1" and got.sub == "user-1"
    got = await verifier.verify(sign(claims(clock, sid=None), key=EC, alg="ES256"))
    assert got.sid is None and got.sub == "user-1"
    got = await verifier.verify(sign(claims(clock, aud=[CLIENT, "other"], sub=None)))
    assert got.sid == "sid-1"


async def test_replay_is_refused(verifier: Any, clock: FrozenClock) -> None:
    token = sign(claims(clock))
    await verifier.verify(token)
    with pytest.raises(LogoutTokenInvalid, match="already used"):
        await verifier.verify(token)
    body = claims(clock)
    await verifier.verify(sign(body))
    with pytest.raises(LogoutTokenInvalid, match="already used"):  # another token, the same jti
        await verifier.verify(sign({**body, "iat": body["iat"] + 1}))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"iss": "https://evil.example"}, "issuer"),
        ({"aud": "someone-else"}, "aud"),
        ({"aud": ["x", "y"]}, "aud"),
        ({"exp": -61}, "expired"),  # relative to now
        ({"iat": 61}, "iat"),  # from the future
        ({"iat": -601}, "iat"),  # too old, whatever exp says
        ({"iat": None}, "iat and exp"),
        ({"exp": None}, "iat and exp"),
        ({"exp": True}, "iat and exp"),
        ({"jti": None}, "jti"),
        ({"jti": ""}, "jti"),
        ({"sid": None, "sub": None}, "names no session"),
        ({"sid": 7}, "strings"),
        ({"events": None}, "event"),
        ({"events": {"http://schemas.openid.net/event/other": {}}}, "event"),
        ({"events": {EVENT: "yes"}}, "event"),
        ({"nonce": "n"}, "nonce"),
    ],
)
async def test_claims_refused(verifier: Any, clock: FrozenClock, change: dict[str, Any], message: str) -> None:
    body = claims(clock)
    for name, value in change.items():
        if name in ("exp", "iat") and isinstance(value, int) and not isinstance(value, bool):
            body[name] = int(clock.now()) + value
        elif value is None:
            body.pop(name, None)
        else:
            body[name] = value
    with pytest.raises(LogoutTokenInvalid, match=message):
        await verifier.verify(sign(body))


async def test_expiry_follows_the_injected_clock(verifier: Any, clock: FrozenClock) -> None:
    token = sign(claims(clock))
    clock.advance(120 + 60)  # exp plus the leeway
    with pytest.raises(LogoutTokenInvalid, match="expired"):
        await verifier.verify(token)


async def test_header_and_signature_refused(verifier: Any, clock: FrozenClock) -> None:
    body = claims(clock)
    payload = b64(body)
    cases = {
        "typ": sign(body, typ="JWT"),
        "kid": sign(body, kid=None),
        "forbidden": sign(body, jku="https://evil.example/jwks"),
        "unknown signing key": sign(body, kid="nope"),
        "does not match": sign(body, key=RSA_ANY_ALG, alg="RS384", kid="rsa-1"),  # the key is pinned to RS256
        "signature": sign(body, key=STRANGER),  # idp's kid, another key
        "alg none": f"{b64({'alg': 'none', 'typ': 'logout+jwt', 'kid': 'rsa-1'})}.{payload}.",
        "hs256": hs256(body, RSA.as_pem(private=False)),  # the public key as an HMAC secret
    }
    for name, token in cases.items():
        with pytest.raises(LogoutTokenInvalid, match=name.split()[0] if name in ("typ", "kid") else None):
            await verifier.verify(token)
    for junk in (None, "", 7, "a.b", "a.b.c", "x" * 9000):
        with pytest.raises(LogoutTokenInvalid):
            await verifier.verify(junk)
