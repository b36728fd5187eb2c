"""idp.resource remembers verified tokens; a remembered token is still refused when it should be."""

from __future__ import annotations

import time

import pytest

from idp.clock import FrozenClock
from idp.resource.jwks import JwksCache
from idp.resource.verifier import AccessTokenVerifier
from idp.tokens import jwt
from idp.tokens.jwt import TokenInvalid
from tests.unit.resource.kit import API, ISSUER, FakeIdP

NOW = float(int(time.time()))


@pytest.fixture
def idp() -> FakeIdP:
    return FakeIdP(("ES256",))


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
async def verifier(idp: FakeIdP, clock: FrozenClock):
    async with idp.http() as http:
        yield AccessTokenVerifier(
            issuer=ISSUER, audience=API, jwks=JwksCache(f"{ISSUER}/jwks.json", http), clock=clock, cache_size=3
        )


@pytest.fixture
def signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = jwt._VERIFIERS["ES256"]

    def counted(key, data, sig):  # type: ignore[no-untyped-def]
        calls.append("ES256")
        real(key, data, sig)

    monkeypatch.setitem(jwt._VERIFIERS, "ES256", counted)
    return calls


async def test_a_repeat_is_not_verified_again(
    idp: FakeIdP, verifier: AccessTokenVerifier, signature_checks: list[str]
) -> None:
    token = idp.token(now=NOW)
    first = await verifier.verify(token)
    assert await verifier.verify(token) == first
    assert verifier.verify_cached(token) == first
    assert signature_checks == ["ES256"]


async def test_a_handler_editing_its_claims_changes_no_later_request(
    idp: FakeIdP, verifier: AccessTokenVerifier
) -> None:
    token = idp.token(now=NOW)
    _, claims = await verifier.verify(token)
    claims["sub"] = "someone-else"
    assert (await verifier.verify(token))[1]["sub"] == "u1"


async def test_a_remembered_token_still_expires(
    idp: FakeIdP, verifier: AccessTokenVerifier, clock: FrozenClock
) -> None:
    token = idp.token(now=NOW, exp=int(NOW) + 60)
    await verifier.verify(token)
    clock.advance(60 + jwt.LEEWAY)
    with pytest.raises(TokenInvalid, match="expired"):
        await verifier.verify(token)


async def test_a_key_evicted_as_compromised_takes_its_remembered_tokens(
    idp: FakeIdP, verifier: AccessTokenVerifier
) -> None:
    token = idp.token(now=NOW)
    await verifier.verify(token)
    verifier.jwks.evict(idp.kid("ES256"))
    with pytest.raises(TokenInvalid, match="signing key"):
        verifier.verify_cached(token)


async def test_a_kid_that_now_names_another_key_is_verified_afresh(
    idp: FakeIdP, verifier: AccessTokenVerifier, signature_checks: list[str]
) -> None:
    token = idp.token(now=NOW)
    await verifier.verify(token)
    kid = idp.kid("ES256")
    other = FakeIdP(("ES256",))
    alg, key = other.keys[other.kid("ES256")][:2]
    public = other.keys[other.kid("ES256")][2] | {"kid": kid}
    idp.keys[kid] = (alg, key, public)  # the IdP's JWKS now publishes a different key under that kid
    await verifier.jwks.refresh(unconditional=True)
    with pytest.raises(TokenInvalid, match="bad signature"):
        await verifier.verify(token)
    assert signature_checks == ["ES256", "ES256"]


async def test_tampering_never_hits(idp: FakeIdP, verifier: AccessTokenVerifier) -> None:
    token = idp.token(now=NOW)
    await verifier.verify(token)
    head, body, sig = token.split(".")
    with pytest.raises(TokenInvalid):
        await verifier.verify(f"{head}.{body}.{sig[:-2]}{'A' if sig[-2] != 'A' else 'B'}{sig[-1]}")


async def test_the_memory_is_bounded(idp: FakeIdP, verifier: AccessTokenVerifier) -> None:
    tokens = [idp.token(now=NOW, jti=f"j{i}") for i in range(10)]
    for token in tokens:
        await verifier.verify(token)
    assert len(verifier._verified) <= verifier.cache_size == 3
    for token in tokens:  # evicted ones verify again, correctly
        assert (await verifier.verify(token))[1]["jti"] in {f"j{i}" for i in range(10)}


async def test_cache_size_zero_verifies_every_time(
    idp: FakeIdP, verifier: AccessTokenVerifier, signature_checks: list[str]
) -> None:
    verifier.cache_size = 0
    token = idp.token(now=NOW)
    await verifier.verify(token)
    await verifier.verify(token)
    assert signature_checks == ["ES256", "ES256"] and not verifier._verified


async def test_a_hit_inside_its_lifetime_costs_no_signature_check_even_near_expiry(
    idp: FakeIdP, verifier: AccessTokenVerifier, clock: FrozenClock, signature_checks: list[str]
) -> None:
    token = idp.token(now=NOW, exp=int(NOW) + 10)
    await verifier.verify(token)
    clock.advance(9)
    await verifier.verify(token)
    assert signature_checks == ["ES256"]  # re-verified only once it is past exp plus the leeway


async def test_an_expired_hit_is_refused_and_forgotten(
    idp: FakeIdP, verifier: AccessTokenVerifier, clock: FrozenClock
) -> None:
    token = idp.token(now=NOW, exp=int(NOW) + 10)
    await verifier.verify(token)
    clock.advance(10 + jwt.LEEWAY)
    with pytest.raises(TokenInvalid, match="expired"):
        verifier.verify_cached(token)
    assert token not in verifier._verified  # no dead entry left to recheck on every request
    with pytest.raises(TokenInvalid, match="expired"):
        await verifier.verify(token)


async def test_verify_cached_checks_a_new_token_with_the_cached_keys(
    idp: FakeIdP, verifier: AccessTokenVerifier, signature_checks: list[str]
) -> None:
    await verifier.verify(idp.token(now=NOW))  # loads the JWKS
    header, claims = verifier.verify_cached(idp.token(now=NOW, sub="u2"))
    assert header["kid"] == idp.kid("ES256") and claims["sub"] == "u2"
    assert len(signature_checks) == 2
    with pytest.raises(TokenInvalid, match="^unknown or revoked signing key$"):
        verifier.verify_cached(idp.token(now=NOW, header={"kid": "not-in-the-jwks"}))
    with pytest.raises(TokenInvalid, match="^unexpected token type$"):
        verifier.verify_cached(idp.token(now=NOW, header={"typ": "JWT"}))


async def test_a_cache_of_one_remembers_one(idp: FakeIdP, clock: FrozenClock, signature_checks: list[str]) -> None:
    async with idp.http() as http:
        jwks = JwksCache(f"{ISSUER}/jwks.json", http)
        one = AccessTokenVerifier(issuer=ISSUER, audience=API, jwks=jwks, clock=clock, cache_size=1)
        token = idp.token(now=NOW)
        await one.verify(token)
        await one.verify(token)
        assert signature_checks == ["ES256"]


async def test_the_leeway_is_the_verifiers_own(idp: FakeIdP, clock: FrozenClock) -> None:
    async with idp.http() as http:
        jwks = JwksCache(f"{ISSUER}/jwks.json", http)
        strict = AccessTokenVerifier(issuer=ISSUER, audience=API, jwks=jwks, clock=clock, leeway=0)
        with pytest.raises(TokenInvalid, match="expired"):
            await strict.verify(idp.token(now=NOW, exp=int(NOW) - 1))  # inside the default leeway, not this one
