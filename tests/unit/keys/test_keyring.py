"""The keyring over an in-memory store: which key signs, what is published, what an import accepts.

The lifecycle on both real backends (and across instances) is tests/integration/test_keyring_rotation.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc.jwk import ECKey, OKPKey, RSAKey

from idp.clock import FrozenClock
from idp.crypto import Sealer
from idp.keys.jwks import PUBLIC_MEMBERS, JwksCache
from idp.keys.keyring import ALGORITHMS, KeyImportError, KeyPolicy, Keyring, generate, import_pem
from tests.unit.keys.fakes import MemoryKeyStore

LEAD = 60.0


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(1_700_000_000.0)


@pytest.fixture
def ring(clock: FrozenClock) -> Keyring:
    policy = KeyPolicy(algorithms=ALGORITHMS, rotation_seconds=1e9, publish_lead=LEAD, retire_keep=600)
    ring = Keyring(MemoryKeyStore(), Sealer(os.urandom(32)), clock, policy, recheck_seconds=0)
    ring.tick()
    return ring


PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def _pem(key: PrivateKey) -> bytes:
    encoding, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(encoding, pkcs8, serialization.NoEncryption())


@pytest.mark.parametrize(("alg", "cls"), [("ES256", ECKey), ("RS256", RSAKey), ("EdDSA", OKPKey)])
def test_generated_keys_carry_kid_alg_and_use_and_publish_no_private_part(alg: str, cls: type) -> None:
    kid, pem, public = generate(alg)
    assert public["kid"] == kid and public["alg"] == alg and public["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & public.keys()
    assert isinstance(cls.import_key(pem), cls)


def test_an_unknown_algorithm_is_not_generated() -> None:
    with pytest.raises(ValueError, match="unsupported signing algorithm"):
        generate("HS256")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: rsa.generate_private_key(65537, 1024), "at least 2048"),
        (lambda: ec.generate_private_key(ec.SECP384R1()), "use P-256"),
    ],
)
def test_weak_or_foreign_keys_are_refused_on_import(make: Callable[[], PrivateKey], message: str) -> None:
    with pytest.raises(KeyImportError, match=message):
        import_pem(_pem(make()))


def test_an_encrypted_or_garbled_pem_is_refused() -> None:
    with pytest.raises(KeyImportError, match="not an unencrypted PEM"):
        import_pem(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")


@pytest.mark.parametrize(
    ("key", "alg"),
    [(ec.generate_private_key(ec.SECP256R1()), "ES256"), (ed25519.Ed25519PrivateKey.generate(), "EdDSA")],
)
def test_an_accepted_import_names_its_algorithm(key: PrivateKey, alg: str) -> None:
    kid, found, pem, public = import_pem(_pem(key), kid="mine")
    assert (kid, found, public["kid"], public["alg"]) == ("mine", alg, "mine", alg)
    assert b"PRIVATE KEY" in pem


def test_the_first_tick_gives_every_algorithm_a_signer(ring: Keyring) -> None:
    for alg in ALGORITHMS:
        kid, _ = ring.signer(alg)
        found = ring.verification_key(kid)
        assert found is not None and found[0] == alg


def test_a_rotated_key_is_published_a_lead_before_it_signs(ring: Keyring, clock: FrozenClock) -> None:
    old, _ = ring.signer("ES256")
    nxt = ring.rotate("ES256")
    assert ring.verification_key(nxt.kid) is not None  # verifiers can fetch it already ...
    assert ring.signer("ES256")[0] == old  # ... but it does not sign yet
    clock.advance(LEAD)
    assert ring.signer("ES256")[0] == nxt.kid


def test_a_compromised_key_stops_verifying_and_a_new_one_signs(ring: Keyring) -> None:
    kid, _ = ring.signer("RS256")
    ring.revoke(kid)
    assert ring.verification_key(kid) is None
    assert ring.signer("RS256")[0] != kid
    with pytest.raises(LookupError):
        ring.revoke(kid)


def test_the_jwks_holds_public_members_only_and_changes_with_the_key_set(ring: Keyring) -> None:
    cache = JwksCache(ring)
    doc = cache.current()
    keys = orjson.loads(doc.body)["keys"]
    assert sorted(k["alg"] for k in keys) == sorted(ALGORITHMS)
    assert all(k.keys() <= PUBLIC_MEMBERS for k in keys)
    assert cache.current() is doc  # unchanged key set: the same bytes and ETag
    ring.rotate("EdDSA")
    assert cache.current().etag != doc.etag
