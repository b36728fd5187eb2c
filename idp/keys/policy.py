"""The keyring's rotation policy, derived from token lifetimes and how long JWKS may be cached."""

from __future__ import annotations

from idp.keys.keyring import KeyPolicy

DAY = 86_400
FALLBACK_ALGORITHMS = ("RS256", "ES256", "EdDSA")
"""Each has a key whatever the defaults: discovery advertises them all (``id_token_signing_alg_values_supported``)."""


def key_policy(
    *,
    access_token_alg: str,
    id_token_alg: str,
    rotation_days: int,
    jwks_max_age: int,
    access_token_ttl: int,
    id_token_ttl: int,
) -> KeyPolicy:
    """The policy for these settings' values.

    * A new key is published ``jwks_max_age + 60`` seconds before it signs: every cached JWKS has
      been refetched by then, so no verifier meets a kid it has not seen.
    * A retired key stays published long enough to verify every token it signed (the longer of the
      two lifetimes, plus that publish lead), plus a day for ``id_token_hint`` at logout.
    """
    lead = jwks_max_age + 60
    return KeyPolicy(
        algorithms=tuple(dict.fromkeys([access_token_alg, id_token_alg, *FALLBACK_ALGORITHMS])),
        rotation_seconds=rotation_days * DAY,
        publish_lead=lead,
        retire_keep=max(access_token_ttl, id_token_ttl) + lead + DAY,
    )
