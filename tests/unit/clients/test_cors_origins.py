"""Which origins a client lets browsers call from, and how the registry keeps the set current."""

from __future__ import annotations

import pytest

from idp.clients.model import Client, ClientValidationError, origin_of, validate_cors_origins
from idp.clock import FrozenClock
from tests.unit.clients.fakes import MemoryClients, registry_over

ISSUER = "https://idp.test"


@pytest.mark.parametrize(
    ("uri", "origin"),
    [
        ("https://App.Example/cb?x=1", "https://app.example"),
        ("https://app.example:443/cb", "https://app.example"),  # the default port is not serialised
        ("https://app.example:8443/cb", "https://app.example:8443"),
        ("http://127.0.0.1:5173/cb", "http://127.0.0.1:5173"),
        ("http://[::1]:8080/cb", "http://[::1]:8080"),
        ("com.example.app:/cb", None),  # a private-use scheme is no web origin
        ("https://app.example:99999/cb", None),
    ],
)
def test_origin_of(uri: str, origin: str | None) -> None:
    assert origin_of(uri) == origin


def test_valid_origins_are_stored_as_browsers_send_them() -> None:
    given = ["https://Admin.Example:443", "http://localhost:3000", "http://127.0.0.1:5173", "https://admin.example"]
    assert validate_cors_origins(given) == ["https://admin.example", "http://localhost:3000", "http://127.0.0.1:5173"]


@pytest.mark.parametrize(
    "origin",
    ["https://app.example/", "https://app.example/path", "https://app.example?q", "https://app.example#f",
     "http://app.example", "ftp://app.example", "app.example", "https://user@app.example", "null", ""],
)  # fmt: skip
def test_invalid_origins(origin: str) -> None:
    with pytest.raises(ClientValidationError):
        validate_cors_origins([origin])


def test_origins_are_bounded() -> None:
    with pytest.raises(ClientValidationError):
        validate_cors_origins([f"https://a{i}.example" for i in range(21)])


def test_only_public_clients_redirects_count() -> None:
    public = Client("p", "SPA", "native", "none", redirect_uris=["https://spa.example/cb", "com.example.app:/cb"])
    secret = Client("w", "Web", "web", "client_secret_basic", redirect_uris=["https://web.example/cb"],
                    allowed_cors_origins=["https://console.example"])  # fmt: skip
    assert public.cors_origins == ["https://spa.example"]
    assert secret.cors_origins == ["https://console.example"]


@pytest.mark.parametrize(
    "uri",
    ["http://127.0.0.1/callback", "http://127.0.0.1:8080/cb", "http://[::1]/cb", "https://localhost/cb",
     "https://127.0.0.1:8443/cb", "https://app.localhost/cb", "com.example.app:/cb", "com.example.app://cb"],
)  # fmt: skip
def test_loopback_and_private_use_redirects_name_no_origin(uri: str) -> None:
    """Any page served on the user's (or anyone's) loopback could claim them: only an operator adds one."""
    app = Client("n", "App", "native", "none", redirect_uris=[uri, "https://app.example/cb"])
    assert app.cors_origins == ["https://app.example"]
    dev = Client("n", "App", "native", "none", redirect_uris=[uri], allowed_cors_origins=["http://127.0.0.1:5173"])
    assert dev.cors_origins == ["http://127.0.0.1:5173"]


def test_the_demos_native_client_adds_nothing_to_the_set() -> None:
    store, clock = MemoryClients(), FrozenClock(1000.0)
    registry = registry_over(store, clock)
    registry.create(
        name="Mobile", kind="native", redirect_uris=["http://127.0.0.1/callback", "com.example.demo:/callback"]
    )
    assert registry.cors_origins() == frozenset()


def test_the_origin_set_is_cached_and_cleared_with_the_client_cache() -> None:
    """Two registries over one store: the other worker sees a change once its cache is invalidated."""
    store, clock = MemoryClients(), FrozenClock(1000.0)
    here, there = (registry_over(store, clock, issuer=ISSUER) for _ in range(2))
    web, _ = here.create(name="Web", kind="web", redirect_uris=["https://web.example/cb"])
    assert there.peek_cors_origins() is None
    assert there.cors_origins() == frozenset() and there.peek_cors_origins() == frozenset()
    lists = store.lists
    assert there.cors_origins() == frozenset() and store.lists == lists  # served from the cache
    here.update(web.client_id, allowed_cors_origins=["https://console.example"])
    assert here.cors_origins() == {"https://console.example"}  # the writer's own cache is cleared at once
    there.invalidate(web.client_id)  # what the change channel does on every other worker
    assert there.cors_origins() == {"https://console.example"}
    here.update(web.client_id, disabled=True)
    assert here.cors_origins() == frozenset()


def test_a_change_while_listing_is_not_masked_by_the_cache() -> None:
    store, clock = MemoryClients(), FrozenClock(1000.0)
    registry = registry_over(store, clock, issuer=ISSUER)
    web, _ = registry.create(name="Web", kind="web", redirect_uris=["https://web.example/cb"])
    listing = store.list

    def list_then_change() -> list[Client]:
        rows = listing()  # the old rows are read ...
        registry.invalidate(web.client_id)  # ... and a change arrives before they are cached
        return rows

    store.list = list_then_change  # type: ignore[method-assign]
    assert registry.cors_origins() == frozenset()
    assert registry.peek_cors_origins() is None  # not kept: the next request reads again
