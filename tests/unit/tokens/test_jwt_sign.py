"""jwt.sign assembles the compact JWS itself: it must be exactly what joserfc makes and what verifiers accept."""

from __future__ import annotations

import base64
import os

import orjson
import pytest
from joserfc import jws

from idp.clock import FrozenClock
from idp.crypto import Sealer
from idp.tokens import jwt
from tests.unit.keys.fakes import keyring

ISS = "https://idp.test"
CLAIMS = {"iss": ISS, "sub": "ü-user", "aud": "https://api", "exp": 1_700_000_600, "iat": 1_700_000_000, "jti": "j"}


@pytest.fixture
def ring():  # type: ignore[no-untyped-def]
    return keyring(Sealer(os.urandom(32)), FrozenClock(1_700_000_000.0))


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_signed_token_matches_joserfc_and_verifies(ring, alg: str) -> None:  # type: ignore[no-untyped-def]
    token = jwt.sign(ring, alg, "at+jwt", CLAIMS)
    kid, key = ring.signer(alg)
    reference = jws.serialize_compact({"alg": alg, "typ": "at+jwt", "kid": kid}, orjson.dumps(CLAIMS), key, [alg])
    assert token.split(".")[:2] == reference.split(".")[:2]  # same protected header and payload bytes
    if alg != "ES256":  # RS256 (PKCS#1 v1.5) and Ed25519 are deterministic; ECDSA is not
        assert token == reference
    signature = base64.urlsafe_b64decode(token.split(".")[2] + "==")
    assert len(signature) == {"ES256": 64, "RS256": 256, "EdDSA": 64}[alg]  # ES256: raw R || S, not DER
    obj = jws.deserialize_compact(token, ring.verification_key(kid)[1], algorithms=[alg])
    assert orjson.loads(obj.payload) == CLAIMS
    header, claims = jwt.verify(ring, token, typ="at+jwt", issuer=ISS, audience="https://api", now=1_700_000_001)
    assert header == {"alg": alg, "typ": "at+jwt", "kid": kid} and claims == CLAIMS


def test_a_tampered_signature_is_refused(ring) -> None:  # type: ignore[no-untyped-def]
    head, payload, sig = jwt.sign(ring, "ES256", "at+jwt", CLAIMS).split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=="))
    raw[-1] ^= 1
    forged = f"{head}.{payload}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"
    with pytest.raises(jwt.TokenInvalid):
        jwt.verify(ring, forged, typ="at+jwt", issuer=ISS, audience="https://api", now=1_700_000_001)
