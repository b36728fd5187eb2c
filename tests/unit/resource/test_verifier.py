"""idp.resource verification rules (RFC 9068 §4, RFC 8725): each test breaks one rule."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import orjson
import pytest

from idp.clock import FrozenClock
from idp.crypto import b64url
from idp.resource.jwks import JwksCache, parse_max_age
from idp.resource.verifier import AccessTokenVerifier
from idp.tokens.jwt import TokenInvalid
from tests.unit.resource.kit import API, ISSUER, FakeIdP

NOW = float(int(time.time()))


@pytest.fixture
def idp() -> FakeIdP:
    return FakeIdP()


@pytest.fixture
async def verifier(idp: FakeIdP):
    async with idp.http() as http:
        yield AccessTokenVerifier(
            issuer=ISSUER, audience=API, jwks=JwksCache(f"{ISSUER}/jwks.json", http), clock=FrozenClock(NOW)
        )


async def refused(verifier: AccessTokenVerifier, token: str, why: str) -> None:
    with pytest.raises(TokenInvalid) as info:
        await verifier.verify(token)
    assert why in str(info.value)


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
async def test_each_supported_algorithm_verifies(idp: FakeIdP, verifier: AccessTokenVerifier, alg: str) -> None:
    _, claims = await verifier.verify(idp.token(alg, now=NOW))
    assert claims["sub"] == "u1"
    await verifier.verify(idp.token(alg, now=NOW, header={"typ": "application/at+jwt"}))  # RFC 9068 §4


def _unsigned(header: dict[str, object], claims: dict[str, object]) -> str:
    return f"{b64url(orjson.dumps(header))}.{b64url(orjson.dumps(claims))}."


async def test_alg_none_is_refused(idp: FakeIdP, verifier: AccessTokenVerifier) -> None:
    good = idp.token(now=NOW)
    claims = orjson.loads(base64.urlsafe_b64decode(good.split(".")[1] + "=="))
    token = _unsigned({"alg": "none", "typ": "at+jwt", "kid": idp.kid("ES256")}, claims)
    await refused(verifier, token, "algorithm")


async def test_hs256_signed_with_the_public_key_is_refused(idp: FakeIdP, verifier: AccessTokenVerifier) -> None:
    kid = idp.kid("RS256")
    public_pem = idp.keys[kid][1].as_pem(private=False)
    head = b64url(orjson.dumps({"alg": "HS256", "typ": "at+jwt", "kid": kid}))
    body = b64url(orjson.dumps({"iss": ISSUER, "aud": API, "sub": "x", "client_id": "c", "iat": NOW,
                                "exp": NOW + 60, "jti": "j"}))  # fmt: skip
    sig = b64url(hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest())
    await refused(verifier, f"{head}.{body}.{sig}", "algorithm")


async def test_alg_must_be_the_keys_pinned_alg(idp: FakeIdP, verifier: AccessTokenVerifier) -> None:
    # An RS256-signed token claiming the ES256 key's kid.
    token = idp.token("RS256", now=NOW, header={"kid": idp.kid("ES256")})
    with pytest.raises(TokenInvalid) as info:
        await verifier.verify(token)
    assert str(info.value) == "algorithm does not match the signing key"  # RFC 8725 §3.1


async def test_kid_is_required_and_must_be_known(idp: FakeIdP, verifier: AccessTokenVerifier) -> None:
    await refused(verifier, idp.token(now=NOW, header={"kid": None}), "kid")
    await refused(verifier, idp.token(now=NOW, header={"kid": "nope"}), "unknown")
    cases = [
        ({"kid": None}, "token has no kid"),
        ({"kid": ""}, "token has no kid"),  # a kid is a non-empty string
        ({"kid": "nope"}, "unknown or revoked signing key"),
    ]
    for header, message in cases:
        with pytest.raises(TokenInvalid) as info:  # the messages are shown to the caller (error_description)
            await verifier.verify(idp.token(now=NOW, header=header))
        assert str(info.value) == message


@pytest.mark.parametrize("name", ["jku", "x5u", "jwk", "x5c", "crit"])
async def test_key_material_from_the_token_is_refused(idp: FakeIdP, verifier: AccessTokenVerifier, name: str) -> None:
    value: object = {"jwk": {"kty": "oct"}, "crit": ["kid"], "x5c": ["MIIB"]}.get(name, "https://evil/k")
    with pytest.raises(TokenInvalid) as info:
        await verifier.verify(idp.token(now=NOW, header={name: value}))
    assert str(info.value) == "token header carries a forbidden parameter"  # shown to the caller


@pytest.mark.parametrize("typ", ["JWT", "id_token+jwt", "logout+jwt", "secevent+jwt", None])
async def test_only_access_tokens_are_access_tokens(idp: FakeIdP, verifier: AccessTokenVerifier, typ: str) -> None:
    await refused(verifier, idp.token(now=NOW, header={"typ": typ}), "type")


async def test_issuer_and_audience(idp: FakeIdP, verifier: AccessTokenVerifier) -> None:
    await refused(verifier, idp.token(now=NOW, iss="https://evil.test"), "issuer")
    await refused(verifier, idp.token(now=NOW, aud="https://other.test"), "audience")
    await refused(verifier, idp.token(now=NOW, aud=ISSUER), "audience")  # the AS itself is not this API
    await verifier.verify(idp.token(now=NOW, aud=["https://other.test", API]))


@pytest.mark.parametrize("missing", ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"])
async def test_rfc9068_claims_are_required(idp: FakeIdP, verifier: AccessTokenVerifier, missing: str) -> None:
    await refused(verifier, idp.token(now=NOW, drop=(missing,)), "")


async def test_time_claims_with_small_leeway(idp: FakeIdP, verifier: AccessTokenVerifier) -> None:
    await refused(verifier, idp.token(now=NOW, exp=NOW - 31), "expired")
    await verifier.verify(idp.token(now=NOW, exp=NOW - 10))  # within leeway
    await refused(verifier, idp.token(now=NOW, nbf=NOW + 61), "not yet valid")
    await verifier.verify(idp.token(now=NOW, nbf=NOW + 8))  # FAPI2: 8 s ahead is fine
    await refused(verifier, idp.token(now=NOW, iat=NOW + 120), "future")
    await refused(verifier, idp.token(now=NOW, exp="soon"), "malformed")


async def test_tampered_signature(idp: FakeIdP, verifier: AccessTokenVerifier) -> None:
    head, body, sig = idp.token(now=NOW).split(".")
    other = b64url(orjson.dumps({"iss": ISSUER, "aud": API, "sub": "admin", "client_id": "c1", "iat": NOW,
                                 "exp": NOW + 600, "jti": "x"}))  # fmt: skip
    await refused(verifier, f"{head}.{other}.{sig}", "signature")
    await refused(verifier, "not-a-jwt", "malformed")


async def test_unknown_kid_refetches_but_rate_limited(idp: FakeIdP) -> None:
    async with idp.http() as http:
        jwks = JwksCache(f"{ISSUER}/jwks.json", http, refetch_interval=10.0)
        v = AccessTokenVerifier(issuer=ISSUER, audience=API, jwks=jwks, clock=FrozenClock(NOW))
        await v.verify(idp.token(now=NOW))
        assert idp.jwks_fetches == 1
        new_kid = idp.add_key("ES256")  # rotated at the IdP: the API has not seen it
        # Just fetched, so the refetch waits for the interval: a flood of made-up kids costs nothing.
        for _ in range(20):
            await refused(v, idp.token(now=NOW, header={"kid": "made-up"}), "unknown")
        assert idp.jwks_fetches == 1
        jwks._last_fetch -= 10.0
        await v.verify(idp.token(now=NOW, kid=new_kid))  # one refetch finds the new key
        assert idp.jwks_fetches == 2
        for _ in range(5):
            await refused(v, idp.token(now=NOW, header={"kid": "made-up-2"}), "unknown")
        assert idp.jwks_fetches == 2


async def test_cache_control_max_age_and_etag_revalidation(idp: FakeIdP) -> None:
    idp.max_age = 60
    clock = [0.0]
    async with idp.http() as http:
        jwks = JwksCache(f"{ISSUER}/jwks.json", http, now=lambda: clock[0])
        kid = idp.kid("ES256")
        assert await jwks.get(kid) is not None and idp.jwks_fetches == 1
        clock[0] = 59.0
        assert await jwks.get(kid) is not None and idp.jwks_fetches == 1  # fresh: no request
        clock[0] = 61.0
        assert await jwks.get(kid) is not None and idp.jwks_fetches == 2  # expired: revalidated (304)
        del idp.keys[kid]  # the IdP pulled the key
        clock[0] = 200.0
        assert await jwks.get(kid) is None and idp.jwks_fetches == 3


async def test_jwks_outage_keeps_keys_only_for_a_bounded_time(idp: FakeIdP) -> None:
    clock = [0.0]
    async with idp.http() as http:
        jwks = JwksCache(f"{ISSUER}/jwks.json", http, now=lambda: clock[0], max_stale=100.0)
        kid = idp.kid("ES256")
        assert await jwks.get(kid) is not None
        idp.jwks_status = 503
        clock[0] = 350.0  # expired (max-age 300) and the IdP is down: last good set still serves
        assert await jwks.get(kid) is not None
        clock[0] = 401.0  # beyond max_stale
        assert await jwks.get(kid) is None


def test_unusable_jwks_entries_are_ignored() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from idp.resource.jwks import import_jwk

    idp = FakeIdP(("ES256",))
    kid = idp.kid("ES256")
    good = idp.keys[kid][2]
    assert import_jwk(good) is not None
    assert import_jwk({k: v for k, v in good.items() if k != "alg"}) is None  # no pinned alg
    assert import_jwk(good | {"alg": "HS256"}) is None
    assert import_jwk(good | {"alg": "RS256"}) is None  # kty does not fit the alg
    assert import_jwk(good | {"use": "enc"}) is None
    numbers = rsa.generate_private_key(65537, 1024).public_key().public_numbers()
    weak = {"kty": "RSA", "n": b64url(numbers.n.to_bytes(128, "big")), "e": "AQAB", "alg": "RS256", "kid": "w"}
    assert import_jwk(weak) is None  # RSA under 2048 bits
    assert import_jwk(idp.keys[kid][1].as_dict(private=True) | {"kid": kid, "alg": "ES256"}) is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("public, max-age=120", 120), ("max-age=0", 0), ("no-cache", 0), ("no-store", 0), ("public", None)],
)
def test_parse_max_age(header: str | None, expected: int | None) -> None:
    assert parse_max_age(header) == expected


def test_principal_from_claims() -> None:
    from idp.resource.verifier import Principal

    claims = {"sub": "u1", "client_id": "c1", "scope": "api:read api:write"}
    p = Principal.from_claims(claims)
    assert (p.sub, p.client_id, p.scopes) == ("u1", "c1", frozenset({"api:read", "api:write"}))
    assert p.claims is claims
    bare = Principal.from_claims({})
    assert (bare.sub, bare.client_id, bare.scopes) == ("", "", frozenset())
    assert Principal.from_claims({"scope": ["api:read"]}).scopes == frozenset()  # only a space-separated string


async def test_a_verifier_for_several_audiences(idp: FakeIdP) -> None:
    async with idp.http() as http:
        jwks = JwksCache(f"{ISSUER}/jwks.json", http)
        both = AccessTokenVerifier(
            issuer=ISSUER, audience=[API, "https://api2.test"], jwks=jwks, clock=FrozenClock(NOW)
        )
        for aud in (API, "https://api2.test"):
            assert (await both.verify(idp.token(now=NOW, aud=aud)))[1]["aud"] == aud
        await refused(both, idp.token(now=NOW, aud="https://other.test"), "audience")
