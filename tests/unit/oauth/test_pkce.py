"""idp.oauth.grants.pkce: each rule at its boundary, with the error code and description the client gets."""

from __future__ import annotations

from typing import Any

import pytest

from idp.clients.model import Client
from idp.errors import InvalidGrant, InvalidRequest, OAuthError
from idp.oauth.grants import pkce

VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 Appendix B
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
OIDC = {"scope": "openid profile", "nonce": "n"}


def _client(**kw: object) -> Client:
    base: dict[str, object] = {"client_id": "c", "name": "n", "kind": "web", "auth_method": "client_secret_basic",
                               "scope": "openid profile", "grant_types": ["authorization_code"]}  # fmt: skip
    return Client(**(base | kw))  # type: ignore[arg-type]


def refusal(kind: type[OAuthError], call: Any, *args: Any) -> str:
    with pytest.raises(OAuthError) as caught:
        call(*args)
    assert type(caught.value) is kind
    return caught.value.description


# -- the authorization request ---------------------------------------------------------------------------


def test_a_method_without_a_challenge_is_refused() -> None:
    for client in (_client(), _client(require_pkce=False)):
        message = refusal(InvalidRequest, pkce.check_challenge, client, OIDC | {"code_challenge_method": "S256"})
        assert message == "code_challenge_method without code_challenge"


def test_a_challenge_is_required_by_default() -> None:
    message = refusal(InvalidRequest, pkce.check_challenge, _client(), OIDC)
    assert message == "code_challenge is required (PKCE with S256)"


def test_the_exemption_is_a_confidential_web_client_registered_without_pkce_sending_openid_and_nonce() -> None:
    exempt = _client(require_pkce=False)
    assert pkce.check_challenge(exempt, OIDC) == (None, None)
    assert pkce.check_challenge(exempt, {"scope": "email openid", "nonce": "n"}) == (None, None)
    not_exempt = [
        (exempt, {"scope": "openid"}),  # no nonce
        (exempt, {"nonce": "n"}),  # no scope at all
        (exempt, {"scope": "profile", "nonce": "n"}),  # not an OIDC request
        (exempt, {"scope": "openid_like profile", "nonce": "n"}),  # scope tokens, not substrings
        (exempt, {"scope": "OpenID", "nonce": "n"}),  # scope tokens are case-sensitive (RFC 6749 §3.3)
        (_client(require_pkce=False, auth_method="none"), OIDC),  # public
        (_client(require_pkce=False, kind="native", auth_method="none"), OIDC),
        (_client(require_pkce=False, kind="service"), OIDC),
        (_client(), OIDC),  # registered with PKCE required
    ]
    for client, params in not_exempt:
        message = refusal(InvalidRequest, pkce.check_challenge, client, params)
        assert message == "code_challenge is required (PKCE with S256)", (client, params)


@pytest.mark.parametrize("method", [None, "plain", "s256", "S256 ", "S384"])
def test_only_s256_is_accepted(method: str | None) -> None:
    params = {"code_challenge": CHALLENGE} | ({} if method is None else {"code_challenge_method": method})
    for client in (_client(), _client(require_pkce=False)):
        assert refusal(InvalidRequest, pkce.check_challenge, client, params) == "code_challenge_method must be S256"


@pytest.mark.parametrize("challenge", ["", CHALLENGE[:42], CHALLENGE + "A", CHALLENGE[:42] + "=", CHALLENGE[:42] + "."])
def test_a_challenge_is_43_base64url_characters(challenge: str) -> None:
    params = {"code_challenge": challenge, "code_challenge_method": "S256"}
    assert refusal(InvalidRequest, pkce.check_challenge, _client(), params) == "malformed code_challenge"


def test_a_well_formed_challenge_is_bound_to_the_code() -> None:
    params = {"code_challenge": "-_" + "A" * 41, "code_challenge_method": "S256"}
    assert pkce.check_challenge(_client(), params) == ("-_" + "A" * 41, "S256")


# -- the token request -----------------------------------------------------------------------------------


def test_the_reference_verifier_matches() -> None:
    pkce.verify(CHALLENGE, "S256", VERIFIER)
    pkce.verify(None, None, None)  # a code issued without a challenge (the exemption), redeemed without one


def test_a_verifier_for_a_code_without_challenge_is_a_downgrade() -> None:
    message = refusal(InvalidGrant, pkce.verify, None, None, VERIFIER)
    assert message == "code_verifier sent for a code issued without code_challenge"  # RFC 9700 §4.8.2


def test_a_code_with_a_challenge_needs_the_verifier() -> None:
    assert refusal(InvalidGrant, pkce.verify, CHALLENGE, "S256", None) == "code_verifier is required for this code"


@pytest.mark.parametrize("length", [43, 128])
def test_verifier_length_bounds_accept(length: int) -> None:
    verifier = ("AZaz09-._~" * 13)[:length]
    pkce.verify(pkce.s256(verifier), "S256", verifier)


@pytest.mark.parametrize("verifier", ["a" * 42, "a" * 129, "a" * 42 + "+", "a" * 42 + "=", "a" * 42 + "é", ""])
def test_a_verifier_outside_the_grammar_is_malformed(verifier: str) -> None:
    assert refusal(InvalidRequest, pkce.verify, pkce.s256("x"), "S256", verifier) == "malformed code_verifier"


def test_a_wrong_verifier_or_a_method_other_than_s256_does_not_match() -> None:
    mismatch = "code_verifier does not match the code_challenge"
    assert refusal(InvalidGrant, pkce.verify, CHALLENGE, "S256", "x" * 43) == mismatch
    assert refusal(InvalidGrant, pkce.verify, CHALLENGE, "plain", VERIFIER) == mismatch  # even a right digest
    assert refusal(InvalidGrant, pkce.verify, VERIFIER, "plain", VERIFIER) == mismatch  # plain never compares
