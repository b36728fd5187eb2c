"""idp.tokens.jwt.verified_claims: signatures checked with cryptography directly, never looser than joserfc."""

from __future__ import annotations

import functools
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


# Fixed tokens, made once: a property must see the same token on every replay of an example
# (ECDSA signatures are randomised and ``exp`` would move with the clock). ``pad`` makes the payload
# segment end with 0, 2 or 3 characters past a multiple of four, so both kinds of unused bits occur.
FIXED = [(alg, pad) for alg in CLASSES for pad in range(3)]


@functools.cache
def fixed(alg: str, pad: int) -> str:
    claims = {"iss": "https://idp.test", "exp": 4_102_444_800, "sub": "u1", "pad": "x" * pad}
    header = {"alg": alg, "typ": "at+jwt", "kid": "k"}
    return jws.serialize_compact(header, orjson.dumps(claims), KEYS[alg][0], algorithms=[alg])


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
STRAYS = "=.+/ !é\n"


def _idp_accepts(tok: str, alg: str) -> bool:
    try:
        verified_claims(tok, alg, KEYS[alg][1])
    except TokenInvalid:
        return False
    return True


def _tail_variants(tok: str):
    """Every one-character change to the last two characters of each segment: each base64url character
    and a few strays in place of it, and each inserted before it."""
    segments = tok.split(".")
    for index, segment in enumerate(segments):
        for at in range(max(0, len(segment) - 2), len(segment)):
            for char in ALPHABET + STRAYS:
                for changed in (segment[:at] + char + segment[at + 1 :], segment[:at] + char + segment[at:]):
                    if changed != segment:
                        yield ".".join([*segments[:index], changed, *segments[index + 1 :]])


@pytest.mark.parametrize(("alg", "pad"), FIXED)
def test_the_last_characters_of_every_segment_decode_only_canonically(alg: str, pad: int) -> None:
    """Exhaustive where the encodings differ (RFC 4648 §3.5): idp accepts exactly what joserfc accepts,
    which is nothing but the token as signed."""
    good = fixed(alg, pad)
    assert _idp_accepts(good, alg) and joserfc_accepts(good, alg)
    checked = 0
    for changed in _tail_variants(good):
        assert (_idp_accepts(changed, alg), joserfc_accepts(changed, alg)) == (False, False), changed
        checked += 1
    assert checked > 6 * len(ALPHABET)


def test_the_fixed_tokens_end_segments_with_both_kinds_of_unused_bits() -> None:
    rests = {len(segment) % 4 for key in FIXED for segment in fixed(*key).split(".")}
    assert {2, 3} <= rests


@pytest.mark.parametrize("alg", list(CLASSES))
def test_a_signature_with_unused_bits_set_is_refused(alg: str) -> None:
    """``...Zw`` and ``...Z-`` decode to the same bytes with a lenient decoder: only the first is the signature."""
    head, body, sig = fixed(alg, 0).split(".")
    assert len(sig) % 4 == 2  # 64- and 256-byte signatures: the last character carries 2 bits, 4 unused
    value = ALPHABET.index(sig[-1])
    same_bits = [c for c in ALPHABET if ALPHABET.index(c) >> 4 == value >> 4 and c != sig[-1]]
    assert len(same_bits) == 15
    for char in same_bits:
        changed = f"{head}.{body}.{sig[:-1]}{char}"
        assert not joserfc_accepts(changed, alg)
        with pytest.raises(TokenInvalid):
            verified_claims(changed, alg, KEYS[alg][1])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(key=st.sampled_from(FIXED), data=st.data())
def test_never_accepts_what_joserfc_refuses(key: tuple[str, int], data: st.DataObject) -> None:
    """Any one-character change anywhere (or a stray character added): accepted only if joserfc accepts it too."""
    alg = key[0]
    good = fixed(*key)
    at = data.draw(st.integers(0, len(good) - 1))
    char = data.draw(st.sampled_from("AQgw-_=.+/ !é\n"))
    insert = data.draw(st.booleans())
    changed = good[:at] + char + good[at + (0 if insert else 1) :]
    try:
        claims = verified_claims(changed, alg, KEYS[alg][1])
    except TokenInvalid:
        return
    assert joserfc_accepts(changed, alg)
    assert changed == good and claims["sub"] == "u1"  # canonical decoding: no other encoding of the same bytes


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


def test_a_65_byte_es256_signature_does_not_verify() -> None:
    """``r || 0x00 || s`` reads as the same two integers if s is taken as "the rest": RFC 7518 §3.4 fixes
    32 octets each, so it is refused here and by joserfc (the client-assertion path)."""
    tok = fixed("ES256", 0)
    raw = strict_b64url(tok.rsplit(".", 1)[1])
    padded = _resigned(tok, raw[:32] + b"\0" + raw[32:])
    with pytest.raises(TokenInvalid, match="bad signature"):
        verified_claims(padded, "ES256", KEYS["ES256"][1])
    assert not joserfc_accepts(padded, "ES256")
    assert verified_claims(_resigned(tok, raw), "ES256", KEYS["ES256"][1])["sub"] == "u1"  # the 64 bytes do


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
