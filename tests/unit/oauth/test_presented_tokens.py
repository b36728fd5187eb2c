"""Rules for tokens a client hands back: the hint orders the kinds tried; who may introspect an access token."""

from __future__ import annotations

import pytest

from idp.clients.model import Client
from idp.oauth.introspection import may_see
from idp.oauth.presented import ACCESS, REFRESH, try_order

APP = Client("app", "App", "web", "client_secret_basic")
API = Client("api", "API", "service", "client_secret_basic", audience="https://api.example")


@pytest.mark.parametrize(
    ("hint", "order"),
    [(None, (ACCESS, REFRESH)), ("access_token", (ACCESS, REFRESH)), ("refresh_token", (REFRESH, ACCESS)),
     ("bogus", (ACCESS, REFRESH))],
)  # fmt: skip
def test_the_hint_orders_both_kinds_and_never_drops_one(hint: str | None, order: tuple[str, str]) -> None:
    assert try_order(hint) == order  # RFC 7009 §2.1 / RFC 7662 §2.1


@pytest.mark.parametrize(
    ("caller", "claims", "seen"),
    [
        (APP, {"client_id": "app", "aud": "https://other.example"}, True),  # issued to the caller
        (API, {"client_id": "app", "aud": "https://api.example"}, True),  # the registered audience
        (API, {"client_id": "app", "aud": ["https://x.example", "https://api.example"]}, True),
        (API, {"client_id": "app", "aud": "api"}, True),  # named by client_id
        (API, {"client_id": "app", "aud": "https://other.example"}, False),
        (APP, {"client_id": "api", "aud": ["https://api.example"]}, False),
        (API, {"client_id": "app"}, False),  # no aud
        (API, {"client_id": "app", "aud": 7}, False),  # malformed aud
    ],
)
def test_an_access_token_is_seen_by_its_client_and_its_audiences_only(
    caller: Client, claims: dict[str, object], seen: bool
) -> None:
    assert may_see(caller, claims) is seen  # RFC 7662 §4


def test_a_client_without_an_audience_is_not_matched_by_an_empty_one() -> None:
    assert may_see(APP, {"client_id": "api", "aud": ""}) is False
