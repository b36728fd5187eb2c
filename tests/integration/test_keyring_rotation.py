"""Keyring lifecycle on both backends: next -> active -> retired -> removed; compromised pulled at once."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from idp.clock import FrozenClock
from idp.keys.keyring import KeyImportError
from idp.services import Services
from idp.store.models import SigningKeyRow
from idp.tokens import jwt


def kids(c: Services) -> set[str]:
    import orjson

    return {k["kid"] for k in orjson.loads(c.jwks.current().body)["keys"]}


def test_first_tick_creates_one_active_key_per_algorithm(container: Services) -> None:
    container.keyring.tick()
    rows = container.keyring.rows()
    assert sorted(r.alg for r in rows if r.state == "active") == ["ES256", "EdDSA", "RS256"]
    container.keyring.tick()  # idempotent
    assert len(container.keyring.rows()) == 3


def test_rotation_publishes_next_before_it_signs(container: Services, clock: FrozenClock) -> None:
    kr = container.keyring
    kr.tick()
    old_kid, _ = kr.signer("ES256")
    nxt = kr.rotate("ES256")
    assert nxt.state == "next"
    assert kr.rotate("ES256").kid == nxt.kid  # a second rotate does not fork the keyring
    assert nxt.kid in kids(container)  # published ...
    assert kr.signer("ES256")[0] == old_kid  # ... but not signing yet
    assert nxt.activate_after - clock.now() >= container.settings.jwks_max_age  # lead >= JWKS cache lifetime

    clock.advance(nxt.activate_after - clock.now() + 1)
    kr.refresh(force=True)
    assert kr.signer("ES256")[0] == nxt.kid  # no gap: it signs as soon as its lead has passed
    kr.tick()
    states = {r.kid: r.state for r in kr.rows()}
    assert states[nxt.kid] == "active" and states[old_kid] == "retired"
    assert old_kid in kids(container)  # retired keys still verify

    retired = next(r for r in kr.rows() if r.kid == old_kid)
    s = container.settings
    # Retired keys outlive every token they signed (and id_token_hint at logout).
    assert retired.remove_after - clock.now() >= max(s.access_token_ttl, s.id_token_ttl) + s.jwks_max_age  # type: ignore[operator]
    clock.advance(retired.remove_after - clock.now() + 1)  # type: ignore[operator]
    kr.tick()
    assert old_kid not in kids(container)
    removed = next(r for r in kr.rows() if r.kid == old_kid)
    assert removed.state == "removed" and removed.private_enc == b""


def test_scheduled_rotation_after_the_period(container: Services, clock: FrozenClock) -> None:
    kr = container.keyring
    kr.tick()
    clock.advance(container.settings.key_rotation_days * 86400 + 1)
    kr.tick()
    assert {r.alg for r in kr.rows() if r.state == "next"} == {"ES256", "EdDSA", "RS256"}


def test_tokens_signed_by_a_retired_key_verify_until_removed(container: Services, clock: FrozenClock) -> None:
    kr = container.keyring
    kr.tick()
    token = jwt.sign(kr, "ES256", "at+jwt", {"iss": "i", "aud": "a", "exp": clock.now() + 600, "iat": clock.now()})
    kid = jwt.peek_header(token)["kid"]
    kr.retire(kid)
    assert kr.signer("ES256")[0] != kid  # a new key took over at once
    jwt.verify(kr, token, typ="at+jwt", issuer="i", audience="a", now=clock.now())


def test_compromised_key_is_unpublished_and_rejected_at_once(container: Services, clock: FrozenClock) -> None:
    kr = container.keyring
    kr.tick()
    token = jwt.sign(kr, "ES256", "at+jwt", {"iss": "i", "aud": "a", "exp": clock.now() + 600, "iat": clock.now()})
    kid = jwt.peek_header(token)["kid"]
    kr.revoke(kid)
    assert kid not in kids(container)
    assert kr.signer("ES256")[0] != kid
    with pytest.raises(jwt.TokenInvalid, match="unknown or revoked"):
        jwt.verify(kr, token, typ="at+jwt", issuer="i", audience="a", now=clock.now())
    with pytest.raises(LookupError):
        kr.revoke(kid)


def test_private_keys_are_encrypted_at_rest(container: Services) -> None:
    container.keyring.tick()
    with container.sessions() as s:
        for row in s.query(SigningKeyRow):
            assert b"PRIVATE KEY" not in row.private_enc
            assert "d" not in row.public_jwk  # only public members are stored in the clear


def test_two_keyrings_sharing_a_database_agree(container: Services, clock: FrozenClock) -> None:
    """Two instances rotating at the same moment end with one consistent keyring."""
    from idp.services import build_services

    other = build_services(container.settings, clock=clock, ephemeral=container.ephemeral, engine=container.engine)
    container.keyring.tick()
    other.keyring.tick()
    a = container.keyring.rotate("ES256")
    b = other.keyring.rotate("ES256")
    assert a.kid == b.kid
    assert len([r for r in other.keyring.rows() if r.state == "next"]) == 1
    other.keyring.refresh(force=True)
    container.keyring.refresh(force=True)
    assert container.jwks.current().body == other.jwks.current().body


def _pem(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: rsa.generate_private_key(65537, 1024), "at least 2048"),
        (lambda: ec.generate_private_key(ec.SECP384R1()), "P-256"),
    ],
)
def test_weak_or_foreign_keys_are_refused(container: Services, make, message: str) -> None:  # type: ignore[no-untyped-def]
    before = container.keyring.rows()
    with pytest.raises(KeyImportError, match=message):
        container.keyring.add_imported(_pem(make()))
    assert container.keyring.rows() == before  # nothing written


def test_import_ed25519_as_next(container: Services) -> None:
    row = container.keyring.add_imported(_pem(ed25519.Ed25519PrivateKey.generate()))
    assert (row.alg, row.state) == ("EdDSA", "next")
    assert row.kid in kids(container)
