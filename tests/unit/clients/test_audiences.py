"""No client may register an audience the IdP uses itself (else it could introspect every user's tokens)."""

from __future__ import annotations

import pytest

from idp.clients.audiences import reserved_audience
from idp.clients.model import ClientValidationError
from idp.clients.registry import ClientRegistry
from idp.clock import FrozenClock
from tests.unit.clients.fakes import MemoryClients, registry_over

ISSUER = "https://idp.example"
API = f"{ISSUER}/api"


@pytest.fixture
def registry() -> ClientRegistry:
    return registry_over(MemoryClients(), FrozenClock(1_700_000_000), issuer=ISSUER)


RESERVED = [
    ISSUER,  # every openid access token names the issuer (the UserInfo endpoint)
    f"{ISSUER}/",
    "HTTPS://IDP.EXAMPLE",
    "https://IdP.example/",
    "https://idp.example:443",
    "https://idp.example:0443/",
    "https://user@idp.example",
    f"{ISSUER}/admin",  # the admin API's audience
    f"{ISSUER}/admin/",
    "HTTPS://idp.example/admin",
    f"{ISSUER}/%61dmin",
    f"{ISSUER}/userinfo",  # anything else the IdP serves, now or later
    f"{ISSUER}/token",
    f"{ISSUER}/api/../admin",
    f"{ISSUER}/api/v2",
]
ALLOWED = [API, f"{API}/", "https://api.example", "https://idp.example:8443", "https://idp.example.org",
           "http://idp.example", "orders-api", "urn:example:api"]  # fmt: skip


@pytest.mark.parametrize("aud", RESERVED)
def test_the_issuer_and_its_url_space_are_reserved(aud: str) -> None:
    assert reserved_audience(aud, issuer=ISSUER, api_audience=API, admin=False)


@pytest.mark.parametrize("aud", ALLOWED)
def test_other_audiences_and_the_default_api_are_free(aud: str) -> None:
    assert not reserved_audience(aud, issuer=ISSUER, api_audience=API, admin=False)


def test_the_admin_audience_only_for_admin_clients() -> None:
    assert not reserved_audience(f"{ISSUER}/admin", issuer=ISSUER, api_audience=API, admin=True)
    assert reserved_audience(ISSUER, issuer=ISSUER, api_audience=API, admin=True)
    assert reserved_audience(f"{ISSUER}/userinfo", issuer=ISSUER, api_audience=API, admin=True)


def test_a_default_audience_set_to_the_issuer_opens_nothing() -> None:
    for api in (ISSUER, f"{ISSUER}/", f"{ISSUER}/admin"):
        assert reserved_audience(ISSUER, issuer=ISSUER, api_audience=api, admin=False)
        assert reserved_audience(f"{ISSUER}/admin", issuer=ISSUER, api_audience=api, admin=False)


@pytest.mark.parametrize("aud", [ISSUER, f"{ISSUER}/admin", "https://api.example HTTPS://IDP.example/"])
def test_registry_refuses_reserved_audiences_on_create_and_update(registry: ClientRegistry, aud: str) -> None:
    with pytest.raises(ClientValidationError, match="reserved"):
        registry.create(name="RS", kind="service", scope="api:read", audience=aud)
    with pytest.raises(ClientValidationError, match="reserved"):
        registry.create(name="RP", kind="web", redirect_uris=["https://rp.example/cb"], audience=aud)
    rs, _ = registry.create(name="RS", kind="service", scope="api:read", audience="https://api.example")
    with pytest.raises(ClientValidationError, match="reserved"):
        registry.update(rs.client_id, audience=aud)
    assert registry.get(rs.client_id).audience == "https://api.example"  # type: ignore[union-attr]


def test_registry_keeps_the_admin_audience_for_idp_admin_service_clients(registry: ClientRegistry) -> None:
    ops, _ = registry.create(name="ops", kind="service", scope="idp:admin", audience=f"{ISSUER}/admin")
    with pytest.raises(ClientValidationError, match="reserved"):  # dropping idp:admin must drop the audience
        registry.update(ops.client_id, scope="api:read")
    with pytest.raises(ClientValidationError, match="reserved"):
        registry.create(name="web", kind="web", redirect_uris=["https://rp.example/cb"], scope="idp:admin",
                        audience=f"{ISSUER}/admin")  # fmt: skip
    rs, _ = registry.create(name="RS", kind="service", scope="api:read", audience=API)
    assert rs.audience == API
