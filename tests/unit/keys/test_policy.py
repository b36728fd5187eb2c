from __future__ import annotations

from idp.keys.keyring import KeyPolicy
from idp.keys.policy import key_policy


def policy(
    *,
    access_token_alg: str = "ES256",
    id_token_alg: str = "RS256",
    rotation_days: int = 30,
    jwks_max_age: int = 300,
    access_token_ttl: int = 600,
    id_token_ttl: int = 900,
) -> KeyPolicy:
    return key_policy(
        access_token_alg=access_token_alg, id_token_alg=id_token_alg, rotation_days=rotation_days,
        jwks_max_age=jwks_max_age, access_token_ttl=access_token_ttl, id_token_ttl=id_token_ttl,
    )  # fmt: skip


def test_defaults_first_then_every_advertised_algorithm_once() -> None:
    assert policy().algorithms == ("ES256", "RS256", "EdDSA")
    assert policy(access_token_alg="EdDSA", id_token_alg="EdDSA").algorithms == ("EdDSA", "RS256", "ES256")


def test_rotation_in_seconds() -> None:
    assert policy(rotation_days=30).rotation_seconds == 30 * 86_400


def test_next_key_published_after_every_cached_jwks_expired() -> None:
    assert policy(jwks_max_age=300).publish_lead == 360
    assert policy(jwks_max_age=0).publish_lead == 60


def test_retired_key_outlives_the_longest_token_plus_the_lead_and_a_day() -> None:
    assert policy(access_token_ttl=600, id_token_ttl=900, jwks_max_age=300).retire_keep == 900 + 360 + 86_400
    assert policy(access_token_ttl=3600, id_token_ttl=60, jwks_max_age=0).retire_keep == 3600 + 60 + 86_400
