"""The grant registry and the token endpoint's common steps: dispatch, who may use a grant, the allow-list."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import pytest
from starlette.datastructures import Headers

from idp.clients.model import Client
from idp.errors import InvalidRequest, UnauthorizedClient, UnsupportedGrantType
from idp.oauth import client_auth
from idp.oauth.grants.client_credentials import ClientCredentialsGrant
from idp.oauth.token.endpoint import TokenEndpoint, permitted
from idp.oauth.token.grant import GrantRegistry
from idp.oauth.token.request import TokenRequest
from idp.services import Services
from tests.oauthkit import basic, native_client, service_client


class Echo:
    """A grant that answers with what reached it."""

    grant_type: ClassVar[str] = "urn:example:echo"
    parameters: ClassVar[frozenset[str]] = frozenset({"kept"})
    public_clients: ClassVar[bool] = True
    blocking: ClassVar[bool] = False

    def issue(self, services: Services, request: TokenRequest) -> dict[str, Any]:
        return {"params": dict(request.params), "resources": request.resources, "client": request.client.client_id}


def test_lookup_finds_only_what_is_registered() -> None:
    registry = GrantRegistry([ClientCredentialsGrant(), Echo()])
    assert registry.lookup("client_credentials").grant_type == "client_credentials"
    assert registry.grant_types == ["client_credentials", "urn:example:echo"]
    for refused in ("password", "implicit", "token", "refresh_token"):  # RFC 9700 §2.4: no password, no implicit
        with pytest.raises(UnsupportedGrantType):
            registry.lookup(refused)


def test_a_grant_type_registered_twice_is_a_wiring_error() -> None:
    with pytest.raises(ValueError, match="twice"):
        GrantRegistry([Echo(), Echo()])


def test_a_missing_grant_type_is_invalid_request() -> None:
    with pytest.raises(InvalidRequest, match="missing grant_type"):
        TokenEndpoint(GrantRegistry([Echo()])).lookup({})


def test_a_public_client_cannot_use_a_confidential_only_grant(container: Services) -> None:
    # Registration refuses this combination too (idp.clients.registry); the endpoint does not rely on it.
    public = dataclasses.replace(native_client(container), grant_types=["authorization_code", "client_credentials"])
    with pytest.raises(UnauthorizedClient, match="public clients cannot use client_credentials"):
        permitted(ClientCredentialsGrant(), public)  # RFC 6749 §4.4


def test_a_client_not_registered_for_the_grant_is_refused(container: Services) -> None:
    native = native_client(container)
    with pytest.raises(UnauthorizedClient, match="not registered for urn:example:echo"):
        permitted(Echo(), native)  # ASVS V10.4.4
    svc, _ = service_client(container)
    permitted(ClientCredentialsGrant(), svc)


def _client(container: Services, grant_types: list[str]) -> tuple[Client, str]:
    return service_client(container, grant_types=grant_types)


def test_only_the_grants_declared_parameters_reach_it(container: Services) -> None:
    client, secret = _client(container, ["urn:example:echo", "client_credentials"])
    endpoint = TokenEndpoint(GrantRegistry([Echo()]))
    form = {"grant_type": Echo.grant_type, "kept": "yes", "dropped": "no"}
    pairs = [*form.items(), ("resource", "https://a.example"), ("resource", "https://b.example")]
    headers = Headers(basic(client.client_id, secret))
    cred = client_auth.presented(headers, form)
    body = endpoint.run(container, Echo(), cred, form, pairs, headers, None)
    assert body == {
        "params": {"kept": "yes"},  # not "dropped", not grant_type
        "resources": ["https://a.example", "https://b.example"],  # RFC 8707 §2: repeated
        "client": client.client_id,
    }
