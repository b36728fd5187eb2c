"""idp.tokens.jwt.verified_claims: signatures checked with cryptography directly, never looser than joserfc."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey

from idp.crypto import b64url
from idp.keys.keyring import generate
from idp.tokens.jwt import TokenInvalid, strict_b64url, verified_claims

CLASSES: dict[str, Any] = {"ES256": ECKey, "RS256": RSAKey, "EdDSA": OKPKey}


def keypair(alg: str) -> tuple[Any, Any]:
    """(private joserfc key, public joserfc key as a verifier imports it from a JWK)."""
    _, pem, public = generate(alg)
    return CLASSES[alg].import_key(pem), CLASSES[alg].import_key(public)


KEYS = {alg: keypair(alg) for alg in CLASSES}


def token(alg: str, **claims: Any) -> str:
    body = {"iss": "https://idp.test", "exp": int(time.time()) + 60, **claims}
    header = {"alg": alg, "typ": "at+jwt", "kid": "k"}
    return jws.serialize_compact(header, orjson.dumps(body), KEYS[alg][0], algorithms=[alg])


def joserfc_accepts(tok: str, alg: str) -> bool:
    try:
        jws.deserialize_compact(tok, KEYS[alg][1], algorithms=[alg])
    except (JoseError, ValueError):
        return False
    return True


@pytest.mark.parametrize("alg", list(CLASSES))
def test_a_good_token_gives_its_claims(alg: str) -> None:
    assert verified_claims(token(alg, sub="u1"), alg, KEYS[alg][1])["sub"] == "u1"


@pytest.mark.parametrize("alg", list(CLASSES))
def test_another_key_of_the_same_algorithm_does_not_verify(alg: str) -> None:
    with pytest.raises(TokenInvalid, match="bad signature"):
        verified_claims(token(alg), alg, keypair(alg)[1])


@settings(max_examples=300, deadline=None)
@given(alg=st.sampled_from(list(CLASSES)), data=st.data())
def test_never_accepts_what_joserfc_refuses(alg: str, data: st.DataObject) -> None:
    """Any one-character change (or a stray character added): accepted only if joserfc accepts it too."""
    good = token(alg, sub="u1")
    at = data.draw(st.integers(0, len(good) - 1))
    char = data.draw(st.sampled_from("AQgw-_=.+/ !é\n"))
    insert = data.draw(st.booleans())
    changed = good[:at] + char + good[at + (0 if insert else 1) :]
    try:
        claims = verified_claims(changed, alg, KEYS[alg][1])
    except TokenInvalid:
        return
    assert joserfc_accepts(changed, alg)
    assert claims["sub"] == "u1"  # only encodings of the same bytes survive (base64's unused low bits)


@pytest.mark.parametrize("stray", ["=", "==", " ", "\n", "!", "+"])
def test_stray_characters_are_not_skipped(stray: str) -> None:
    head, body, sig = token("ES256").split(".")
    for changed in (
        f"{head}.{body}.{sig}{stray}",
        f"{head}.{body}{stray}.{sig}",
        f"{head}.{body}.{sig[:10]}{stray}{sig[10:]}",
    ):
        with pytest.raises(TokenInvalid):
            verified_claims(changed, "ES256", KEYS["ES256"][1])


def _resigned(tok: str, sig: bytes) -> str:
    head, body, _ = tok.split(".")
    return f"{head}.{body}.{b64url(sig)}"


def test_es256_takes_exactly_r_and_s() -> None:
    tok = token("ES256")
    signing_input = tok.rsplit(".", 1)[0].encode()
    der = KEYS["ES256"][0].private_key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(TokenInvalid):
        verified_claims(_resigned(tok, der), "ES256", KEYS["ES256"][1])  # a DER signature is not a JWS one
    raw = strict_b64url(tok.rsplit(".", 1)[1])
    for sig in (raw[:-1], raw + b"\0", b"\0" + raw):
        with pytest.raises(TokenInvalid):
            verified_claims(_resigned(tok, sig), "ES256", KEYS["ES256"][1])


def test_the_key_must_be_of_the_algorithms_kind() -> None:
    """The pinned alg decides the check; a key of another kind or size never verifies under it."""
    p384 = ECKey.import_key(ec.generate_private_key(ec.SECP384R1()).public_key())
    with pytest.raises(TokenInvalid):
        verified_claims(token("ES256"), "ES256", p384)
    with pytest.raises(TokenInvalid):
        verified_claims(token("ES256"), "ES256", KEYS["RS256"][1])
    small = rsa.generate_private_key(65537, 1024)
    tok = token("RS256")
    signing_input = tok.rsplit(".", 1)[0].encode()
    weak = _resigned(tok, small.sign(signing_input, padding.PKCS1v15(), hashes.SHA256()))
    with pytest.warns(SecurityWarning):  # joserfc warns at import; a JWKS importer would have dropped it
        small_key = RSAKey.import_key(small.public_key())
    with pytest.raises(TokenInvalid):
        verified_claims(weak, "RS256", small_key)  # RFC 7518 §3.3: 2048 bits


def test_claims_must_be_an_object() -> None:
    head = b64url(orjson.dumps({"alg": "ES256", "typ": "at+jwt", "kid": "k"}))
    body = b64url(b"[1, 2]")
    sig = KEYS["ES256"][0].private_key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(sig)
    tok = f"{head}.{body}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
    with pytest.raises(TokenInvalid, match="malformed claims"):
        verified_claims(tok, "ES256", KEYS["ES256"][1])
