"""Each grant's own refusals, called directly over the embedded services: each test fails if its check goes."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.datastructures import Headers

from idp.clients.model import Client
from idp.errors import InvalidGrant, InvalidRequest, InvalidScope
from idp.oauth.grants import pkce
from idp.oauth.grants.authorization_code import AuthorizationCodeGrant
from idp.oauth.grants.client_credentials import ClientCredentialsGrant
from idp.oauth.grants.refresh_token import RefreshTokenGrant
from idp.oauth.token.request import TokenRequest
from idp.services import Services
from idp.tokens.codes import CodeData
from tests.oauthkit import NATIVE_REDIRECT, make_user, native_client, pkce_pair, service_client

CODE = AuthorizationCodeGrant()


def request(client: Client, grant_type: str, **params: str) -> TokenRequest:
    return TokenRequest(grant_type, params, [], client, Headers())


def code_for(c: Services, client: Client, user_id: str, challenge: str | None, **kw: Any) -> str:
    data = CodeData(
        client_id=client.client_id, redirect_uri=NATIVE_REDIRECT, user_id=user_id, scope="openid offline_access",
        auth_time=c.clock.now(), code_challenge=challenge, code_challenge_method="S256" if challenge else None, **kw,
    )  # fmt: skip
    return c.codes.issue(data)


@pytest.fixture
def native(container: Services) -> Client:
    container.keyring.tick()  # signing keys, as at start
    return native_client(container)


def test_a_code_is_required(container: Services, native: Client) -> None:
    with pytest.raises(InvalidRequest, match="missing code"):
        CODE.issue(container, request(native, "authorization_code", redirect_uri=NATIVE_REDIRECT))


def test_the_redirect_uri_must_be_the_authorization_requests(container: Services, native: Client) -> None:
    verifier, challenge = pkce_pair()
    user = make_user(container)
    for sent in ({}, {"redirect_uri": NATIVE_REDIRECT + "x"}):  # RFC 6749 §4.1.3: omitted or different
        code = code_for(container, native, user.id, challenge)
        with pytest.raises(InvalidGrant, match="redirect_uri"):
            CODE.issue(container, request(native, "authorization_code", code=code, code_verifier=verifier, **sent))


def test_a_code_issued_to_another_client_is_refused(container: Services, native: Client) -> None:
    verifier, challenge = pkce_pair()
    other = native_client(container, name="Other")
    code = code_for(container, other, make_user(container).id, challenge)
    with pytest.raises(InvalidGrant, match="another client"):
        CODE.issue(
            container,
            request(native, "authorization_code", code=code, redirect_uri=NATIVE_REDIRECT, code_verifier=verifier),
        )


def test_pkce_is_checked_after_the_code(container: Services, native: Client) -> None:
    verifier, challenge = pkce_pair()
    user = make_user(container)
    code = code_for(container, native, user.id, challenge)
    with pytest.raises(InvalidGrant, match="code_verifier is required"):
        CODE.issue(container, request(native, "authorization_code", code=code, redirect_uri=NATIVE_REDIRECT))
    code = code_for(container, native, user.id, challenge)
    with pytest.raises(InvalidGrant, match="does not match"):
        CODE.issue(
            container,
            request(native, "authorization_code", code=code, redirect_uri=NATIVE_REDIRECT, code_verifier="v" * 43),
        )


def test_a_good_exchange_and_then_its_replay(container: Services, native: Client) -> None:
    verifier, challenge = pkce_pair()
    code = code_for(container, native, make_user(container).id, challenge, nonce="n-1")
    ok = request(native, "authorization_code", code=code, redirect_uri=NATIVE_REDIRECT, code_verifier=verifier)
    body = CODE.issue(container, ok)
    assert {"access_token", "refresh_token", "id_token"} <= body.keys() and body["token_type"] == "Bearer"
    with pytest.raises(InvalidGrant, match="already used"):  # RFC 6749 §4.1.2: single use
        CODE.issue(container, ok)
    assert container.grants.lookup(body["refresh_token"]) is None  # ... and the replay revoked what it issued
    assert pkce.s256(verifier) == challenge


def test_refresh_needs_a_bounded_token(container: Services, native: Client) -> None:
    grant = RefreshTokenGrant()
    with pytest.raises(InvalidRequest, match="missing refresh_token"):
        grant.issue(container, request(native, "refresh_token"))
    with pytest.raises(InvalidRequest, match="malformed refresh_token"):
        grant.issue(container, request(native, "refresh_token", refresh_token="r" * 513))


def test_client_credentials_grants_only_registered_scopes(container: Services) -> None:
    container.keyring.tick()
    svc, _ = service_client(container, scope="api:read")
    grant = ClientCredentialsGrant()
    assert grant.issue(container, request(svc, "client_credentials", scope="api:read"))["scope"] == "api:read"
    with pytest.raises(InvalidScope):
        grant.issue(container, request(svc, "client_credentials", scope="api:read api:write"))


def test_the_declarations() -> None:
    assert (CODE.public_clients, CODE.blocking) == (True, True)
    assert (ClientCredentialsGrant.public_clients, ClientCredentialsGrant.blocking) == (False, False)  # RFC 6749 §4.4
    assert CODE.parameters == {"code", "redirect_uri", "code_verifier"}
    assert RefreshTokenGrant.parameters == {"refresh_token", "scope"}
