"""idp.tokens.jwt.verify / check_claims / peek_header: each header and claim rule, its boundary, and the
message it answers with (the message becomes the ``error_description`` a client sees)."""

from __future__ import annotations

import base64
import os
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jws
from joserfc.jwk import ECKey

from idp.clock import FrozenClock
from idp.crypto import Sealer, b64url
from idp.tokens import jwt
from tests.unit.keys.fakes import keyring

ISS = "https://idp.test"
NOW = 1_700_000_000
CLAIMS: dict[str, Any] = {"iss": ISS, "sub": "u", "aud": "https://api", "exp": NOW + 600, "iat": NOW}


@pytest.fixture(scope="module")
def ring():  # type: ignore[no-untyped-def]
    return keyring(Sealer(os.urandom(32)), FrozenClock(float(NOW)))


def forged(ring: Any, header: dict[str, Any], claims: dict[str, Any] | None = None) -> str:
    """A token with any header, validly signed by the ring's ES256 key."""
    _, key = ring.signer("ES256")
    signing_input = f"{b64url(orjson.dumps(header))}.{b64url(orjson.dumps(claims or CLAIMS))}"
    r, s = decode_dss_signature(key.private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def es256_header(ring: Any, **extra: Any) -> dict[str, Any]:
    return {"alg": "ES256", "typ": "at+jwt", "kid": ring.signer("ES256")[0], **extra}


def verify(ring: Any, token: str, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    args: dict[str, Any] = {"typ": "at+jwt", "issuer": ISS, "audience": "https://api", "now": NOW}
    return jwt.verify(ring, token, **(args | kwargs))


def refusal(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(jwt.TokenInvalid) as caught:
        call(*args, **kwargs)
    return str(caught.value)


# -- the header -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, b"a.b.c", "a.b", "a.b.c.d", "abc"])
def test_a_token_that_is_not_three_segments_is_malformed(token: Any) -> None:
    assert refusal(jwt.peek_header, token) == "malformed token"


def test_the_size_bound_is_inclusive(ring) -> None:  # type: ignore[no-untyped-def]
    head = b64url(orjson.dumps({"alg": "ES256", "kid": "k"}))
    at_bound = head + "." + "A" * (jwt.MAX_TOKEN_BYTES - len(head) - 2) + "."
    assert len(at_bound) == jwt.MAX_TOKEN_BYTES
    assert jwt.peek_header(at_bound) == {"alg": "ES256", "kid": "k"}
    assert refusal(jwt.peek_header, at_bound + "A") == "malformed token"


@pytest.mark.parametrize("head", [b64url(b"{not json"), "a=", b64url(b"[1, 2]"), b64url(b'"alg"')])
def test_a_header_that_is_not_a_json_object_is_malformed(head: str) -> None:
    assert refusal(jwt.peek_header, f"{head}.e30.sig") == "malformed token header"


@pytest.mark.parametrize("kid", [None, "", 7, ["k"]])
def test_a_token_without_a_string_kid_is_refused(ring, kid: Any) -> None:  # type: ignore[no-untyped-def]
    header = {k: v for k, v in es256_header(ring, kid=kid).items() if v is not None}
    assert refusal(verify, ring, forged(ring, header)) == "token has no kid"


@pytest.mark.parametrize("name", sorted(jwt.FORBIDDEN_HEADERS))
def test_forbidden_header_parameters_are_refused(ring, name: str) -> None:  # type: ignore[no-untyped-def]
    token = forged(ring, es256_header(ring, **{name: "https://evil.test/jwks"}))
    assert refusal(verify, ring, token) == "token header carries a forbidden parameter"


def test_typ_is_compared_case_insensitively_against_one_or_several(ring) -> None:  # type: ignore[no-untyped-def]
    token = forged(ring, es256_header(ring, typ="AT+JWT"))
    assert verify(ring, token)[1] == CLAIMS
    assert verify(ring, token, typ=("application/at+jwt", "at+jwt"))[1] == CLAIMS
    assert verify(ring, token, typ=["JWT", "At+Jwt"])[1] == CLAIMS
    assert refusal(verify, ring, token, typ=("jwt", "logout+jwt")) == "unexpected token type"


def test_a_token_without_typ_is_of_no_type(ring) -> None:  # type: ignore[no-untyped-def]
    header = es256_header(ring)
    del header["typ"]
    assert refusal(verify, ring, forged(ring, header)) == "unexpected token type"


def test_an_unknown_kid_is_refused(ring) -> None:  # type: ignore[no-untyped-def]
    token = forged(ring, es256_header(ring, kid="no-such-key"))
    assert refusal(verify, ring, token) == "unknown or revoked signing key"


@pytest.mark.parametrize("alg", ["RS256", "EdDSA", "none", "HS256", None])
def test_the_header_alg_must_be_the_keys_pinned_one(ring, alg: Any) -> None:  # type: ignore[no-untyped-def]
    header = {k: v for k, v in es256_header(ring, alg=alg).items() if v is not None}
    assert refusal(verify, ring, forged(ring, header)) == "algorithm does not match the signing key"


def test_a_bad_signature_and_non_object_claims_say_so(ring) -> None:  # type: ignore[no-untyped-def]
    head, body, sig = forged(ring, es256_header(ring)).split(".")
    other = forged(ring, es256_header(ring), {**CLAIMS, "sub": "v"}).split(".")[1]
    assert refusal(verify, ring, f"{head}.{other}.{sig}") == "bad signature"
    _, key = ring.verification_key(ring.signer("ES256")[0])
    array = forged(ring, es256_header(ring), [1, 2])  # type: ignore[arg-type]
    assert refusal(jwt.verified_claims, array, "ES256", key) == "malformed claims"


# -- the claims -----------------------------------------------------------------------------------------


def check(claims: dict[str, Any], **kwargs: Any) -> None:
    jwt.check_claims(claims, **({"issuer": ISS, "audience": "https://api", "now": NOW} | kwargs))


@pytest.mark.parametrize("name", ["iss", "exp", "iat"])
def test_required_claims_by_default(name: str) -> None:
    claims = {k: v for k, v in CLAIMS.items() if k != name}
    assert refusal(check, claims) == f"missing {name} claim"


def test_the_caller_chooses_the_required_claims(ring) -> None:  # type: ignore[no-untyped-def]
    token = jwt.sign(ring, "ES256", "at+jwt", CLAIMS)
    assert refusal(verify, ring, token, require=("iss", "exp", "jti")) == "missing jti claim"
    assert verify(ring, token, require=("iss", "exp", "sub"))[1] == CLAIMS


def test_the_issuer_must_match() -> None:
    assert refusal(check, {**CLAIMS, "iss": "https://other.test"}) == "wrong issuer"


@pytest.mark.parametrize("aud", ["https://api", ["x", "https://api"]])
@pytest.mark.parametrize("wanted", ["https://api", ("https://api", "y"), ["z", "https://api"]])
def test_one_shared_audience_is_enough(aud: Any, wanted: Any) -> None:
    check({**CLAIMS, "aud": aud}, audience=wanted)


@pytest.mark.parametrize("aud", ["https://other", ["x", "y"], [], None, 7, {"https://api": 1}])
def test_no_shared_audience_is_refused(aud: Any) -> None:
    claims = {k: v for k, v in {**CLAIMS, "aud": aud}.items() if v is not None}
    assert refusal(check, claims) == "wrong audience"
    assert refusal(check, claims, audience=["https://other-api", "z"]) == "wrong audience"
    check(claims, audience=None)  # the caller checks aud itself


def test_verify_checks_the_audience(ring) -> None:  # type: ignore[no-untyped-def]
    token = jwt.sign(ring, "ES256", "at+jwt", CLAIMS)
    assert refusal(verify, ring, token, audience="https://elsewhere") == "wrong audience"
    assert verify(ring, token, audience=None)[1] == CLAIMS


@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", ["1700000600", None, [NOW]])
def test_time_claims_must_be_numbers(name: str, value: Any) -> None:
    assert refusal(check, {**CLAIMS, name: value}) == f"malformed {name} claim"


def test_expiry_with_leeway() -> None:
    check({**CLAIMS, "exp": NOW - jwt.LEEWAY + 1})
    assert refusal(check, {**CLAIMS, "exp": NOW - jwt.LEEWAY}) == "token expired"
    check({**CLAIMS, "exp": NOW + 0.5}, leeway=0)
    assert refusal(check, {**CLAIMS, "exp": NOW}, leeway=0) == "token expired"


def test_an_expired_token_passes_only_when_the_caller_allows_it(ring) -> None:  # type: ignore[no-untyped-def]
    expired = {**CLAIMS, "exp": NOW - 3600, "iat": NOW - 7200}
    check(expired, allow_expired=True)
    token = jwt.sign(ring, "ES256", "at+jwt", expired)
    assert verify(ring, token, allow_expired=True)[1] == expired
    assert refusal(verify, ring, token) == "token expired"


def test_verify_passes_the_leeway_on(ring) -> None:  # type: ignore[no-untyped-def]
    token = jwt.sign(ring, "ES256", "at+jwt", {**CLAIMS, "exp": NOW - 10})
    assert verify(ring, token)[1]["exp"] == NOW - 10  # within the default leeway
    assert refusal(verify, ring, token, leeway=0) == "token expired"


def test_not_before_with_leeway() -> None:
    check({**CLAIMS, "nbf": NOW})
    check({**CLAIMS, "nbf": NOW + jwt.LEEWAY})
    assert refusal(check, {**CLAIMS, "nbf": NOW + jwt.LEEWAY + 1}) == "token not yet valid"
    assert refusal(check, {**CLAIMS, "nbf": NOW + 1}, leeway=0) == "token not yet valid"


def test_issued_at_with_leeway() -> None:
    check({**CLAIMS, "iat": NOW + jwt.LEEWAY})
    assert refusal(check, {**CLAIMS, "iat": NOW + jwt.LEEWAY + 1}) == "token issued in the future"
    no_iat = {k: v for k, v in CLAIMS.items() if k != "iat"}
    check(no_iat, require=("iss", "exp"))  # iat and nbf are checked only when present


# -- algorithms outside the fast path (joserfc's generic one) ------------------------------------------


class _OneKeyRing:
    """A keyring holding one key of an algorithm the fast path does not cover."""

    def __init__(self, alg: str, key: Any) -> None:
        self.alg, self.key = alg, key

    def signer(self, alg: str) -> tuple[str, Any]:
        assert alg == self.alg
        return "k384", self.key


def test_other_algorithms_are_signed_and_verified_by_joserfc() -> None:
    key = ECKey.generate_key("P-384")
    token = jwt.sign(_OneKeyRing("ES384", key), "ES384", "at+jwt", CLAIMS)  # type: ignore[arg-type]
    head = orjson.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert head == {"alg": "ES384", "typ": "at+jwt", "kid": "k384"}
    assert orjson.loads(jws.deserialize_compact(token, key, algorithms=["ES384"]).payload) == CLAIMS
    public = ECKey.import_key(key.as_dict(private=False))
    assert jwt.verified_claims(token, "ES384", public) == CLAIMS
    other = ECKey.import_key(ECKey.generate_key("P-384").as_dict(private=False))
    assert refusal(jwt.verified_claims, token, "ES384", other) == "bad signature"
