"""Authorization-server metadata (RFC 8414) and OpenID Provider metadata (OIDC Discovery §3), assembled
from the features' contributions.

Advertises exactly what is implemented; both well-known documents are the same object, so they cannot
drift apart. Fields come out in :data:`FIELD_ORDER` (then any other field in contribution order), so
the bytes do not depend on the order the features are listed in. The document is checked once, when the
app is built, with Authlib's RFC 8414 and OIDC Discovery validators.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata

FIELD_ORDER = (
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "userinfo_endpoint",
    "jwks_uri",
    "revocation_endpoint",
    "introspection_endpoint",
    "end_session_endpoint",
    "scopes_supported",
    "response_types_supported",
    "response_modes_supported",
    "grant_types_supported",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
    "token_endpoint_auth_methods_supported",
    "token_endpoint_auth_signing_alg_values_supported",
    "revocation_endpoint_auth_methods_supported",
    "revocation_endpoint_auth_signing_alg_values_supported",
    "introspection_endpoint_auth_methods_supported",
    "introspection_endpoint_auth_signing_alg_values_supported",
    "code_challenge_methods_supported",
    "dpop_signing_alg_values_supported",
    "claims_supported",
    "acr_values_supported",
    "prompt_values_supported",
    "claims_parameter_supported",
    "request_parameter_supported",
    "request_uri_parameter_supported",
    "authorization_response_iss_parameter_supported",
    "frontchannel_logout_supported",
    "backchannel_logout_supported",
    "backchannel_logout_session_supported",
    "ui_locales_supported",
)


def assemble(contributions: Iterable[Mapping[str, object]]) -> dict[str, object]:
    """One document from the features' parts; a field advertised twice is a wiring error (ValueError)."""
    merged: dict[str, object] = {}
    for part in contributions:
        for key, value in part.items():
            if key in merged:
                raise ValueError(f"discovery: {key!r} is advertised by two features")
            merged[key] = value
    rank = {key: i for i, key in enumerate(FIELD_ORDER)}
    document = dict(sorted(merged.items(), key=lambda item: rank.get(item[0], len(rank))))
    validate(document)
    return document


def validate(document: Mapping[str, object]) -> None:
    """Raise ValueError when the document breaks RFC 8414 §2 or OIDC Discovery §3."""
    AuthorizationServerMetadata(document).validate()
    OpenIDProviderMetadata(document).validate()
