"""DPoP proof verification (RFC 9449 §4.3): each test breaks one rule."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
import redis

from idp.clock import FrozenClock
from idp.resource.dpop import (
    ALGS,
    DPoPError,
    DPoPVerifier,
    HmacNonces,
    MemoryReplayCache,
    RedisReplayCache,
    ReplayCacheUnavailable,
    access_token_hash,
    challenge,
    normalise_htu,
    thumbprint,
)
from tests.dpopkit import DPoPKey, b64, unsigned

NOW = 1_900_000_000.0
URL = "https://api.test/orders"


@pytest.fixture(scope="module")
def key() -> DPoPKey:
    return DPoPKey("ES256")


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def verifier(clock: FrozenClock) -> DPoPVerifier:
    return DPoPVerifier(replay=MemoryReplayCache(now=clock.now), now=clock.now)


def refused(verifier: DPoPVerifier, proof: str, why: str, *, error: str = "invalid_dpop_proof", **kw) -> DPoPError:
    kw.setdefault("method", "POST")
    kw.setdefault("url", URL)
    with pytest.raises(DPoPError) as info:
        verifier.verify(proof, **kw)
    assert info.value.error == error
    assert why in info.value.description
    return info.value


def claims_of(proof: str) -> dict:
    return orjson.loads(base64.urlsafe_b64decode(proof.split(".")[1] + "=="))


# --- what a good proof gives --------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGS)
def test_each_algorithm_verifies_and_names_the_key(verifier: DPoPVerifier, alg: str) -> None:
    key = DPoPKey(alg)
    proof = verifier.verify(key.proof("POST", URL, iat=NOW, jti="j1"), method="POST", url=URL)
    assert proof.jkt == key.jkt  # RFC 7638 thumbprint, as joserfc computes it
    assert (proof.jti, proof.htm, proof.htu, proof.iat, proof.nonce, proof.ath) == (
        "j1",
        "POST",
        URL,
        int(NOW),
        None,
        None,
    )


def test_thumbprint_matches_rfc7638_example() -> None:
    # RFC 7638 §3.1
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",  # noqa: E501
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    with pytest.raises(ValueError):
        thumbprint({"kty": "oct", "k": "c2VjcmV0"})


def test_access_token_hash_is_sha256_base64url() -> None:
    assert access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU") == b64(
        hashlib.sha256(b"Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU").digest()
    )
    assert (
        access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU")
        == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    )


def test_only_asymmetric_algorithms_can_be_configured() -> None:
    for algs in (("none",), ("HS256",), ("ES256", "HS256"), ()):
        with pytest.raises(ValueError):
            DPoPVerifier(algs=algs, replay=MemoryReplayCache(), now=lambda: NOW)


# --- the JWS and its header -----------------------------------------------------------------------------------


def test_not_one_compact_jws(verifier: DPoPVerifier, key: DPoPKey) -> None:
    good = key.proof("POST", URL, iat=NOW)
    for bad in ("", "abc", good + ".x", good.replace(".", "..", 1), "x" * 9000 + "." + good):
        refused(verifier, bad, "compact JWS")  # RFC 9449 §4.3 points 1-2


def test_non_canonical_base64url_is_refused(verifier: DPoPVerifier, key: DPoPKey) -> None:
    good = key.proof("POST", URL, iat=NOW)
    head, body, sig = good.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[alphabet.index(sig[-1]) | 1]  # 64-byte ES256 signature: 2 pad bits in the last character
    assert last != sig[-1]
    refused(verifier, f"{head}.{body}.{sig[:-1]}{last}", "base64url")
    refused(verifier, f"{head}.{body}.{sig}=", "base64url")
    refused(verifier, f"{head}.{body}+.{sig}", "base64url")


def test_typ_must_be_dpop_jwt(verifier: DPoPVerifier, key: DPoPKey) -> None:
    for typ in ("JWT", "at+jwt", "DPOP+JWT", None):
        header = {"typ": typ} if typ else {}
        proof = key.proof("POST", URL, iat=NOW, header=header, drop=() if typ else ("typ",))
        refused(verifier, proof, "typ")  # RFC 9449 §4.3 point 4


def test_alg_none_is_refused(verifier: DPoPVerifier, key: DPoPKey) -> None:
    claims = claims_of(key.proof("POST", URL, iat=NOW))
    refused(verifier, unsigned({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk}, claims), "alg")


def test_hs256_is_refused_even_keyed_with_the_public_jwk(verifier: DPoPVerifier, key: DPoPKey) -> None:
    claims = claims_of(key.proof("POST", URL, iat=NOW))
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": key.jwk}
    signing_input = f"{b64(orjson.dumps(header))}.{b64(orjson.dumps(claims))}".encode()
    mac = hmac.new(orjson.dumps(key.jwk), signing_input, "sha256").digest()
    refused(verifier, unsigned(header, claims, mac), "alg")
    oct_header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": b64(b"secret")}}
    refused(verifier, unsigned(oct_header, claims, b"x" * 32), "alg")


def test_alg_outside_the_configured_list_is_refused(clock: FrozenClock) -> None:
    only_es = DPoPVerifier(algs=("ES256",), replay=MemoryReplayCache(), now=clock.now)
    refused(only_es, DPoPKey("EdDSA").proof("POST", URL, iat=NOW), "alg")


def test_jwk_missing_is_refused(verifier: DPoPVerifier, key: DPoPKey) -> None:
    refused(verifier, key.proof("POST", URL, iat=NOW, drop=("jwk",)), "jwk")  # RFC 9449 §4.3 point 7


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_private_key_in_the_jwk_is_refused(verifier: DPoPVerifier, alg: str) -> None:
    key = DPoPKey(alg)
    refused(verifier, key.proof("POST", URL, iat=NOW, header={"jwk": key.private_jwk}), "public key")


def test_one_private_member_is_enough_to_refuse(verifier: DPoPVerifier, key: DPoPKey) -> None:
    proof = key.proof("POST", URL, iat=NOW, header={"jwk": {**key.jwk, "d": key.private_jwk["d"]}})
    refused(verifier, proof, "public key")


def test_jwk_of_another_type_than_alg_is_refused(verifier: DPoPVerifier) -> None:
    ec_key, ed_key = DPoPKey("ES256"), DPoPKey("EdDSA")
    refused(verifier, ec_key.proof("POST", URL, iat=NOW, header={"jwk": ed_key.jwk}), "fit alg")


def test_signature_by_another_key_is_refused(verifier: DPoPVerifier, key: DPoPKey) -> None:
    other = DPoPKey("ES256")
    refused(verifier, key.proof("POST", URL, iat=NOW, header={"jwk": other.jwk}), "signature")  # RFC 9449 §4.3 p.7


def test_tampered_claims_are_refused(verifier: DPoPVerifier, key: DPoPKey) -> None:
    head, _, sig = key.proof("POST", URL, iat=NOW).split(".")
    body = b64(orjson.dumps({"jti": "x", "htm": "POST", "htu": URL, "iat": int(NOW)}))
    refused(verifier, f"{head}.{body}.{sig}", "signature")


def test_ec_point_off_the_curve_is_refused(verifier: DPoPVerifier, key: DPoPKey) -> None:
    bad = {**key.jwk, "y": b64(bytes(31) + b"\x01")}
    refused(verifier, key.proof("POST", URL, iat=NOW, header={"jwk": bad}), "usable public key")


def test_ec_coordinates_must_have_their_full_length(verifier: DPoPVerifier, key: DPoPKey) -> None:
    x = base64.urlsafe_b64decode(key.jwk["x"] + "==")
    padded = {**key.jwk, "x": b64(b"\0" + x)}  # the same point, not the RFC 7518 §6.2.1.2 encoding
    refused(verifier, key.proof("POST", URL, iat=NOW, header={"jwk": padded}), "usable public key")


def test_es256_signature_must_be_64_bytes(verifier: DPoPVerifier, key: DPoPKey) -> None:
    head, body, sig = key.proof("POST", URL, iat=NOW).split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    longer = raw[:32] + b"\0" + raw[32:]  # r || 0 || s encodes the same s: still no ES256 signature
    refused(verifier, f"{head}.{body}.{b64(longer)}", "signature")  # RFC 7518 §3.4


def test_short_rsa_key_is_refused(verifier: DPoPVerifier, key: DPoPKey) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    private = rsa.generate_private_key(65537, 1024)
    numbers = private.public_key().public_numbers()
    jwk = {"kty": "RSA", "n": b64(numbers.n.to_bytes(128, "big")), "e": b64(numbers.e.to_bytes(3, "big"))}
    header, claims = {"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk}, claims_of(key.proof("POST", URL, iat=NOW))
    signing_input = f"{b64(orjson.dumps(header))}.{b64(orjson.dumps(claims))}".encode()
    signature = private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    refused(verifier, unsigned(header, claims, signature), "usable public key")  # RFC 7518 §3.3: 2048 bits at least


def test_rsa_keys_with_a_huge_exponent_are_refused(verifier: DPoPVerifier) -> None:
    key = DPoPKey("RS256")
    jwk = {**key.jwk, "e": b64((2**64 + 1).to_bytes(9, "big"))}  # verification cost grows with the exponent
    refused(verifier, key.proof("POST", URL, iat=NOW, header={"jwk": jwk}), "usable public key")


def test_crit_is_refused(verifier: DPoPVerifier, key: DPoPKey) -> None:
    refused(verifier, key.proof("POST", URL, iat=NOW, header={"crit": ["kid"], "kid": "k1"}), "crit")


# --- the claims ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["jti", "htm", "htu", "iat"])
def test_required_claims(verifier: DPoPVerifier, key: DPoPKey, claim: str) -> None:
    refused(verifier, key.proof("POST", URL, iat=NOW, drop=(claim,)), claim)  # RFC 9449 §4.3 point 6


def test_claims_of_the_wrong_type(verifier: DPoPVerifier, key: DPoPKey) -> None:
    refused(verifier, key.proof("POST", URL, claims={"iat": str(int(NOW))}), "iat")
    refused(verifier, key.proof("POST", URL, claims={"iat": True}), "iat")
    refused(verifier, key.proof("POST", URL, iat=NOW, claims={"jti": 7}), "jti")
    refused(verifier, key.proof("POST", URL, iat=NOW, claims={"jti": "j" * 513}), "jti")
    refused(verifier, key.proof("POST", URL, iat=NOW, claims={"htu": ["x"]}), "htu")


def test_htm_must_equal_the_method(verifier: DPoPVerifier, key: DPoPKey) -> None:
    refused(verifier, key.proof("GET", URL, iat=NOW), "htm")  # RFC 9449 §4.3 point 8
    refused(verifier, key.proof("post", URL, iat=NOW), "htm")
    verifier.verify(key.proof("GET", URL, iat=NOW), method="GET", url=URL)


@pytest.mark.parametrize(
    "htu",
    ["https://api.test/other", "https://api.test/orders/", "http://api.test/orders", "https://api.test:8443/orders",
     "https://evil.test/orders", "https://api.test.evil/orders", "/orders", "urn:x:orders", "https://api.test"],
)  # fmt: skip
def test_htu_for_another_url_is_refused(verifier: DPoPVerifier, key: DPoPKey, htu: str) -> None:
    refused(verifier, key.proof("POST", htu, iat=NOW), "htu")  # RFC 9449 §4.3 point 9


@pytest.mark.parametrize(
    "htu",
    ["https://api.test/orders", "HTTPS://API.Test/orders", "https://api.test:443/orders", "https://api.test/orders?x=1",
     "https://api.test/orders#f", "https://api.test/a/../orders", "https://api.test/%6Frders"],
)  # fmt: skip
def test_htu_equal_after_normalisation(clock: FrozenClock, key: DPoPKey, htu: str) -> None:
    verifier = DPoPVerifier(replay=MemoryReplayCache(now=clock.now), now=clock.now)
    verifier.verify(key.proof("POST", htu, iat=NOW), method="POST", url=URL + "?page=2")


def test_normalise_htu() -> None:
    assert normalise_htu("HTTP://Example.COM:80") == "http://example.com/"
    assert normalise_htu("https://[::1]:8443/a%2fb?q#f") == "https://[::1]:8443/a%2Fb"
    for bad in ("ftp://x/", "https:///x", "https://u:p@x/", "https://x:99999/", "x"):
        with pytest.raises(ValueError):
            normalise_htu(bad)


def test_stale_iat_is_refused(verifier: DPoPVerifier, key: DPoPKey) -> None:
    verifier.verify(key.proof("POST", URL, iat=NOW - 300), method="POST", url=URL)
    refused(verifier, key.proof("POST", URL, iat=NOW - 301), "too old")  # RFC 9449 §4.3 point 11


def test_future_iat_is_refused(verifier: DPoPVerifier, key: DPoPKey) -> None:
    verifier.verify(key.proof("POST", URL, iat=NOW + 60), method="POST", url=URL)
    refused(verifier, key.proof("POST", URL, iat=NOW + 61), "future")  # RFC 9449 §4.3 point 11


def test_window_is_configurable(clock: FrozenClock, key: DPoPKey) -> None:
    tight = DPoPVerifier(max_age_seconds=10, future_skew_seconds=0, replay=MemoryReplayCache(), now=clock.now)
    refused(tight, key.proof("POST", URL, iat=NOW - 11), "too old")
    refused(tight, key.proof("POST", URL, iat=NOW + 1), "future")


# --- ath -----------------------------------------------------------------------------------------------------


def test_ath_required_with_an_access_token(verifier: DPoPVerifier, key: DPoPKey) -> None:
    refused(verifier, key.proof("GET", URL, iat=NOW), "ath", method="GET", access_token="tok")  # RFC 9449 §4.3 p.12


def test_ath_of_another_token_is_refused(verifier: DPoPVerifier, key: DPoPKey) -> None:
    proof = key.proof("GET", URL, iat=NOW, access_token="other")
    refused(verifier, proof, "ath", method="GET", access_token="tok")
    refused(verifier, key.proof("GET", URL, iat=NOW, claims={"ath": 5}), "ath", method="GET", access_token="tok")


def test_ath_matching_the_token_is_accepted(verifier: DPoPVerifier, key: DPoPKey) -> None:
    proof = verifier.verify(
        key.proof("GET", URL, iat=NOW, access_token="tok"), method="GET", url=URL, access_token="tok"
    )
    assert proof.ath == access_token_hash("tok")


# --- replay --------------------------------------------------------------------------------------------------


def test_replayed_proof_is_refused(verifier: DPoPVerifier, key: DPoPKey) -> None:
    proof = key.proof("POST", URL, iat=NOW, jti="once")
    verifier.verify(proof, method="POST", url=URL)
    refused(verifier, proof, "used before")  # RFC 9449 §11.1
    refused(verifier, key.proof("POST", URL, iat=NOW, jti="once"), "used before")  # same key, same jti


def test_same_jti_under_another_key_is_another_proof(verifier: DPoPVerifier, key: DPoPKey) -> None:
    verifier.verify(key.proof("POST", URL, iat=NOW, jti="shared"), method="POST", url=URL)
    verifier.verify(DPoPKey("ES256").proof("POST", URL, iat=NOW, jti="shared"), method="POST", url=URL)


def test_jti_is_remembered_as_long_as_the_proof_is_acceptable(clock: FrozenClock, key: DPoPKey) -> None:
    verifier = DPoPVerifier(replay=MemoryReplayCache(now=clock.now), now=clock.now)
    proof = key.proof("POST", URL, iat=NOW + 60, jti="late")
    verifier.verify(proof, method="POST", url=URL)
    clock.advance(360)  # iat + max_age: still acceptable, so still remembered
    refused(verifier, proof, "used before")
    clock.advance(1)
    refused(verifier, proof, "too old")


def test_replay_refused_across_threads(verifier: DPoPVerifier, key: DPoPKey) -> None:
    proof = key.proof("POST", URL, iat=NOW, jti="race")
    barrier = threading.Barrier(8)

    def attempt(_: int) -> bool:
        barrier.wait()
        try:
            verifier.verify(proof, method="POST", url=URL)
            return True
        except DPoPError:
            return False

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(attempt, range(8))) == 1


def test_memory_cache_is_bounded_and_expires() -> None:
    clock = FrozenClock(0)
    cache = MemoryReplayCache(3, now=clock.now)
    assert all(cache.first_use(k, 10) for k in "abc")
    assert not cache.first_use("a", 10)
    with pytest.raises(ReplayCacheUnavailable):  # full of live keys: refuse, never forget one early
        cache.first_use("d", 10)
    clock.advance(10)
    assert cache.first_use("d", 10) and cache.first_use("a", 10)
    assert len(cache) == 2


def test_full_memory_cache_refuses_the_proof(clock: FrozenClock, key: DPoPKey) -> None:
    verifier = DPoPVerifier(replay=MemoryReplayCache(1, now=clock.now), now=clock.now)
    verifier.verify(key.proof("POST", URL, iat=NOW), method="POST", url=URL)
    with pytest.raises(ReplayCacheUnavailable):
        verifier.verify(key.proof("POST", URL, iat=NOW), method="POST", url=URL)


class _DownRedis:
    def set(self, *a, **kw):
        raise redis.ConnectionError("down")


def test_redis_outage_refuses_the_proof(clock: FrozenClock, key: DPoPKey) -> None:
    verifier = DPoPVerifier(replay=RedisReplayCache(_DownRedis()), now=clock.now)  # type: ignore[arg-type]
    with pytest.raises(ReplayCacheUnavailable):
        verifier.verify(key.proof("POST", URL, iat=NOW), method="POST", url=URL)


@pytest.mark.postgres
def test_redis_cache_shared_by_two_verifiers(clock: FrozenClock, key: DPoPKey) -> None:
    import secrets

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    prefix = f"test:dpop:{secrets.token_hex(4)}:"
    try:
        one, two = (DPoPVerifier(replay=RedisReplayCache(client, prefix=prefix), now=clock.now) for _ in range(2))
        proof = key.proof("POST", URL, iat=NOW, jti="across")
        one.verify(proof, method="POST", url=URL)
        refused(two, proof, "used before")
        ttl = client.ttl(f"{prefix}{key.jkt}:across")
        assert 290 <= ttl <= 301
    finally:
        for k in client.scan_iter(prefix + "*"):
            client.delete(k)
        client.close()


# --- nonces --------------------------------------------------------------------------------------------------


KEK = b"k" * 32


def test_nonce_required_when_configured(clock: FrozenClock, key: DPoPKey) -> None:
    nonces = HmacNonces(KEK, now=clock.now)
    verifier = DPoPVerifier(replay=MemoryReplayCache(), now=clock.now, nonces=nonces)
    err = refused(verifier, key.proof("POST", URL, iat=NOW), "needs a server nonce", error="use_dpop_nonce")  # §8
    assert err.nonce == nonces.current()
    refused(verifier, key.proof("POST", URL, iat=NOW, nonce="made-up"), "nonce", error="use_dpop_nonce")
    proof = verifier.verify(key.proof("POST", URL, iat=NOW, nonce=err.nonce), method="POST", url=URL)
    assert proof.nonce == err.nonce


def test_nonce_of_another_key_is_refused(clock: FrozenClock, key: DPoPKey) -> None:
    verifier = DPoPVerifier(replay=MemoryReplayCache(), now=clock.now, nonces=HmacNonces(KEK, now=clock.now))
    foreign = HmacNonces(b"x" * 32, now=clock.now).current()
    refused(verifier, key.proof("POST", URL, iat=NOW, nonce=foreign), "nonce", error="use_dpop_nonce")


def test_nonces_rotate_and_agree_across_instances() -> None:
    clock = FrozenClock(NOW - NOW % 300)
    one, two = HmacNonces(KEK, now=clock.now), HmacNonces(KEK, now=clock.now)
    first = one.current()
    assert two.current() == first and two.valid(first)
    clock.advance(299)
    assert one.current() == first
    clock.advance(1)
    assert one.current() != first and two.valid(first)  # the previous slice's nonce still holds
    clock.advance(300)
    assert not two.valid(first) and not one.valid(first)


def test_nonce_ignored_without_a_source(verifier: DPoPVerifier, key: DPoPKey) -> None:
    assert verifier.verify(key.proof("POST", URL, iat=NOW, nonce="n"), method="POST", url=URL).nonce == "n"
    assert verifier.fresh_nonce() is None


def test_challenge_header() -> None:
    assert challenge(ALGS) == 'DPoP algs="ES256 RS256 PS256 EdDSA Ed25519"'
    err = DPoPError("invalid_dpop_proof", 'bad "x"')
    assert challenge(("ES256",), err) == 'DPoP error="invalid_dpop_proof", error_description="bad \'x\'", algs="ES256"'
