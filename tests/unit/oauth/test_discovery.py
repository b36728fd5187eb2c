"""The discovery document: assembled from the features, the same bytes for the default set, validated."""

from __future__ import annotations

import orjson
import pytest

from idp.app import DEFAULT_FEATURES, discovery_document, grant_registry
from idp.config import Settings
from idp.oauth.discovery import assemble, validate

ISSUER = "https://idp.example"
# The published document for the default features, byte for byte.
GOLDEN = (
    '{"issuer":"https://idp.example","authorization_endpoint":"https://idp.example/authorize","token_endp'
    'oint":"https://idp.example/token","userinfo_endpoint":"https://idp.example/userinfo","jwks_uri":"htt'
    'ps://idp.example/jwks.json","revocation_endpoint":"https://idp.example/revoke","introspection_endpoi'
    'nt":"https://idp.example/introspect","end_session_endpoint":"https://idp.example/logout","scopes_sup'
    'ported":["openid","profile","email","offline_access"],"response_types_supported":["code"],"response_'
    'modes_supported":["query"],"grant_types_supported":["authorization_code","refresh_token","client_cre'
    'dentials","urn:ietf:params:oauth:grant-type:token-exchange"],"subject_types_supported":["public"],"i'
    'd_token_signing_alg_values_supported":["RS256","ES'
    '256","EdDSA"],"token_endpoint_auth_methods_supported":["client_secret_basic","client_secret_post","p'
    'rivate_key_jwt","none"],"token_endpoint_auth_signing_alg_values_supported":["ES256","RS256","PS256",'
    '"EdDSA"],"revocation_endpoint_auth_methods_supported":["client_secret_basic","client_secret_post","p'
    'rivate_key_jwt","none"],"revocation_endpoint_auth_signing_alg_values_supported":["ES256","RS256","PS'
    '256","EdDSA"],"introspection_endpoint_auth_methods_supported":["client_secret_basic","client_secret_'
    'post","private_key_jwt"],"introspection_endpoint_auth_signing_alg_values_supported":["ES256","RS256"'
    ',"PS256","EdDSA"],"code_challenge_methods_supported":["S256"],"dpop_signing_alg_values_supported":["'
    'ES256","RS256","PS256","EdDSA","Ed25519"],"claims_supported":["sub","iss","aud","exp","iat","auth_ti'
    'me","nonce","acr","amr","sid","at_hash","name","preferred_username","email","email_verified"],"acr_v'
    'alues_supported":["urn:idp:acr:sfa","urn:idp:acr:mfa"],"prompt_values_supported":["none","login","co'
    'nsent"],"claims_parameter_supported":false,"request_parameter_supported":false,"request_uri_paramete'
    'r_supported":false,"authorization_response_iss_parameter_supported":true,"frontchannel_logout_suppor'
    'ted":false,"backchannel_logout_supported":true,"backchannel_logout_session_supported":true,"ui_local'
    'es_supported":["en"]}'
)


def _document(issuer: str = ISSUER) -> dict[str, object]:
    return discovery_document(Settings(issuer=issuer), DEFAULT_FEATURES)  # type: ignore[call-arg]


def test_the_default_features_publish_the_same_bytes() -> None:
    assert orjson.dumps(_document()).decode() == GOLDEN


def test_the_order_of_the_features_does_not_change_the_bytes() -> None:
    settings = Settings(issuer=ISSUER)  # type: ignore[call-arg]
    assert orjson.dumps(discovery_document(settings, DEFAULT_FEATURES[::-1])).decode() == GOLDEN


def test_a_field_advertised_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="two features"):
        assemble([{"issuer": ISSUER}, {"issuer": ISSUER}])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"issuer": "http://idp.example"}, "https"),
        ({"response_types_supported": None}, "response_types_supported"),
        ({"token_endpoint_auth_methods_supported": "client_secret_basic"}, "token_endpoint_auth_methods_supported"),
        # RFC 8414 §2: private_key_jwt listed for an endpoint requires that endpoint's algorithm list
        ({"revocation_endpoint_auth_signing_alg_values_supported": None}, "revocation_endpoint_auth_signing"),
        ({"introspection_endpoint_auth_signing_alg_values_supported": None}, "introspection_endpoint_auth_signing"),
    ],
)
def test_authlib_validates_the_document(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate({**_document(), **change})


def test_every_endpoint_advertises_the_assertion_algorithms_client_authentication_accepts() -> None:
    from idp.oauth import client_auth

    document = _document()
    for endpoint in ("token", "revocation", "introspection"):
        assert document[f"{endpoint}_endpoint_auth_signing_alg_values_supported"] == list(client_auth.ASSERTION_ALGS)


def test_the_grant_types_advertised_are_the_registrys_and_the_ones_clients_may_register() -> None:
    from idp.clients.model import GRANT_TYPES

    served = grant_registry(DEFAULT_FEATURES).grant_types
    assert _document()["grant_types_supported"] == served
    assert set(served) == GRANT_TYPES  # a client cannot be registered for a grant nobody serves, nor the reverse
