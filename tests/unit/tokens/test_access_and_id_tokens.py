"""Access tokens (RFC 9068) and ID tokens: explicit typing keeps them apart; claims and hashes."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from idp.clock import FrozenClock
from idp.crypto import Sealer
from idp.tokens import jwt
from idp.tokens.access import AccessTokens
from idp.tokens.id_token import IdTokens, half_hash
from tests.unit.keys.fakes import keyring

ISS = "https://idp.test"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(1_700_000_000.0)


@pytest.fixture
def ring(clock: FrozenClock):  # type: ignore[no-untyped-def]
    return keyring(Sealer(os.urandom(32)), clock)


def test_access_token_roundtrip_and_claims(ring, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    tokens = AccessTokens(ring, clock, issuer=ISS, ttl=600, default_alg="ES256")
    issued = tokens.issue(
        client_id="c", sub="u", audience=["https://api"], scope="a b", auth_time=5, sid="s", acr="aal1"
    )
    header, claims = tokens.verify(issued.token, audience="https://api")
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    assert claims == issued.claims and claims["exp"] == issued.exp == 1_700_000_600
    assert claims["aud"] == "https://api" and claims["auth_time"] == 5 and claims["sid"] == "s"
    two = tokens.issue(client_id="c", sub="u", audience=["a", "b", "a"], scope="")
    assert two.claims["aud"] == ["a", "b"] and "scope" not in two.claims
    assert two.jti != issued.jti
    with pytest.raises(jwt.TokenInvalid):
        tokens.verify(issued.token, audience="https://other")
    clock.advance(600 + jwt.LEEWAY + 1)
    with pytest.raises(jwt.TokenInvalid):
        tokens.verify(issued.token, audience="https://api")


def test_types_do_not_cross(ring, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    at = AccessTokens(ring, clock, issuer=ISS, ttl=600, default_alg="ES256")
    it = IdTokens(ring, clock, issuer=ISS, ttl=900, default_alg="RS256")
    id_token = it.issue(client_id="c", sub="u", auth_time=1)
    access = at.issue(client_id="c", sub="u", audience=["c"], scope="openid").token
    with pytest.raises(jwt.TokenInvalid, match="type"):
        at.verify(id_token, audience="c")  # RFC 8725 §3.11
    with pytest.raises(jwt.TokenInvalid, match="type"):
        it.verify(access, client_id="c")


def test_id_token_claims(ring, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    it = IdTokens(ring, clock, issuer=ISS, ttl=900, default_alg="RS256")
    token = it.issue(client_id="c", sub="u", auth_time=7.9, nonce="n", sid="s", acr="aal1", amr=["pwd"],
                     access_token="at")  # fmt: skip
    claims = it.verify(token, client_id="c")
    assert claims["aud"] == "c" and claims["auth_time"] == 7 and claims["nonce"] == "n"
    assert claims["at_hash"] == half_hash("at", "RS256") and claims["amr"] == ["pwd"]
    clock.advance(10_000)
    with pytest.raises(jwt.TokenInvalid):
        it.verify(token, client_id="c")
    assert it.verify(token, client_id="c", allow_expired=True)["sub"] == "u"  # id_token_hint at logout


def test_half_hash_per_algorithm() -> None:
    def expect(h: bytes) -> str:
        return base64.urlsafe_b64encode(h[: len(h) // 2]).rstrip(b"=").decode()

    assert half_hash("x", "RS256") == expect(hashlib.sha256(b"x").digest())
    assert half_hash("x", "ES256") == expect(hashlib.sha256(b"x").digest())
    assert half_hash("x", "EdDSA") == expect(hashlib.sha512(b"x").digest())


def test_a_token_minted_after_a_cut_off_in_the_same_second_is_stamped_past_it(ring, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    from idp.denylist.denyset import DenySet
    from idp.denylist.entries import DenyEntry
    from idp.resource.verifier import AccessTokenVerifier

    deny = DenySet()
    tokens = AccessTokens(
        ring, clock, issuer=ISS, ttl=600, default_alg="ES256",
        latest_cutoff=deny.latest_cutoff,
    )  # fmt: skip
    clock.advance(0.2)
    before = tokens.issue(client_id="c", sub="u", audience=["https://api"], scope="", sid="s")
    assert before.claims["iat"] == 1_700_000_000
    clock.advance(0.5)
    deny.add(DenyEntry(1, "session", "s", clock.now() + 660, clock.now()))  # "sign out" at T + 0.7
    assert deny.is_denied(before.claims)  # issued before it, in the same second: denied
    clock.advance(0.2)
    after = tokens.issue(client_id="c", sub="u", audience=["https://api"], scope="", sid="s")
    assert after.claims["iat"] == 1_700_000_001  # at most 1 s ahead of now
    assert after.exp == before.exp  # the lifetime is not stretched
    assert not deny.is_denied(after.claims)
    other = tokens.issue(client_id="c", sub="u", audience=["https://api"], scope="", sid="s2")
    assert other.claims["iat"] == 1_700_000_000  # no cut-off names it: as usual
    # The IdP's own verification and idp.resource's accept an iat 1 s ahead.
    assert tokens.verify(after.token, audience="https://api")[1]["iat"] == 1_700_000_001
    AccessTokenVerifier(issuer=ISS, audience="https://api", jwks=None, clock=clock).check(after.claims)  # type: ignore[arg-type]
