"""Logout tokens: each MUST of OpenID Connect Back-Channel Logout 1.0 §2.4 (and what §2.6 has the RP check)."""

from __future__ import annotations

import base64
import os

import orjson
import pytest

from idp.clock import FrozenClock
from idp.crypto import Sealer
from idp.tokens import jwt
from idp.tokens.access import AccessTokens
from idp.tokens.id_token import IdTokens
from idp.tokens.logout_token import EVENT, TTL, TYP, LogoutTokens
from tests.unit.keys.fakes import keyring

ISS = "https://idp.test"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(1_700_000_000.0)


@pytest.fixture
def ring(clock: FrozenClock):  # type: ignore[no-untyped-def]
    return keyring(Sealer(os.urandom(32)), clock)


@pytest.fixture
def tokens(ring, clock: FrozenClock) -> LogoutTokens:  # type: ignore[no-untyped-def]
    return LogoutTokens(ring, clock, issuer=ISS, default_alg="RS256")


def parts(token: str) -> tuple[dict, dict]:
    header, payload, _ = token.split(".")

    def decode(part: str) -> dict:
        return orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))

    return decode(header), decode(payload)


def test_the_claims_are_those_bcl_requires(tokens: LogoutTokens, ring) -> None:  # type: ignore[no-untyped-def]
    token = tokens.issue(client_id="rp1", sid="s-1", sub="u-1")
    header, claims = jwt.verify(
        ring, token, typ=TYP, issuer=ISS, audience="rp1", now=1_700_000_000.0,
        require=("iss", "aud", "iat", "exp", "jti", "events"),
    )  # fmt: skip
    assert header["typ"] == "logout+jwt"  # BCL §2.4 / RFC 8725 §3.11: explicit typing
    assert header["kid"] and header["alg"] == "RS256"  # signed by an active key, named by kid
    assert claims["iss"] == ISS  # BCL §2.4: iss REQUIRED
    assert claims["aud"] == "rp1"  # BCL §2.4: aud REQUIRED, the client_id
    assert claims["iat"] == 1_700_000_000  # BCL §2.4: iat REQUIRED
    assert claims["exp"] == 1_700_000_000 + TTL and TTL <= 120  # BCL §2.4: exp REQUIRED; short (two minutes)
    assert claims["events"] == {EVENT: {}}  # BCL §2.4: that member, an empty JSON object
    assert EVENT == "http://schemas.openid.net/event/backchannel-logout"
    assert claims["sid"] == "s-1" and claims["sub"] == "u-1"


def test_jti_is_unique_per_token(tokens: LogoutTokens) -> None:
    jtis = {parts(tokens.issue(client_id="rp1", sid="s", sub="u"))[1]["jti"] for _ in range(50)}
    assert len(jtis) == 50  # BCL §2.4: jti REQUIRED, unique


def test_never_a_nonce(tokens: LogoutTokens) -> None:
    for sid, sub in (("s", "u"), ("s", None), (None, "u")):
        assert "nonce" not in parts(tokens.issue(client_id="rp1", sid=sid, sub=sub))[1]  # BCL §2.4: PROHIBITED


def test_sid_or_sub_must_be_present(tokens: LogoutTokens) -> None:
    assert "sub" not in parts(tokens.issue(client_id="rp1", sid="s", sub=None))[1]
    assert "sid" not in parts(tokens.issue(client_id="rp1", sid=None, sub="u"))[1]
    with pytest.raises(ValueError):
        tokens.issue(client_id="rp1", sid=None, sub=None)  # BCL §2.4: one of sid and sub MUST be present


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_signed_with_the_clients_id_token_algorithm(tokens: LogoutTokens, ring, alg: str) -> None:  # type: ignore[no-untyped-def]
    token = tokens.issue(client_id="rp1", sid="s", sub="u", alg=alg)
    header, _ = parts(token)
    assert header["alg"] == alg and header["kid"] == ring.signer(alg)[0]
    jwt.verify(ring, token, typ=TYP, issuer=ISS, audience="rp1", now=1_700_000_000.0)


def test_a_logout_token_is_no_id_token_and_an_id_token_no_logout_token(ring, clock, tokens) -> None:  # type: ignore[no-untyped-def]
    logout = tokens.issue(client_id="rp1", sid="s", sub="u")
    ids = IdTokens(ring, clock, issuer=ISS, ttl=900, default_alg="RS256")
    with pytest.raises(jwt.TokenInvalid, match="type"):
        ids.verify(logout, client_id="rp1")
    id_token = ids.issue(client_id="rp1", sub="u", auth_time=1)
    with pytest.raises(jwt.TokenInvalid, match="type"):
        jwt.verify(ring, id_token, typ=TYP, issuer=ISS, audience="rp1", now=clock.now())


def test_it_expires_soon(tokens: LogoutTokens, ring, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    token = tokens.issue(client_id="rp1", sid="s", sub="u")
    clock.advance(TTL + jwt.LEEWAY + 1)
    with pytest.raises(jwt.TokenInvalid):
        jwt.verify(ring, token, typ=TYP, issuer=ISS, audience="rp1", now=clock.now())


def test_a_logout_token_is_no_access_token(ring, clock, tokens) -> None:  # type: ignore[no-untyped-def]
    logout = tokens.issue(client_id="rp1", sid="s", sub="u")
    access = AccessTokens(ring, clock, issuer=ISS, ttl=600, default_alg="ES256")
    with pytest.raises(jwt.TokenInvalid, match="type"):
        access.verify(logout, audience="rp1")  # RFC 8725 §3.11: typ logout+jwt is not at+jwt
