"""The token exchange grant's decisions (RFC 8693), each on its own: parameters, target, scope, ``act``, binding;
and the registration rules for ``token_exchange_audiences``."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.datastructures import Headers

from idp.clients.model import TOKEN_EXCHANGE, Client, ClientValidationError, validate_exchange_audiences
from idp.errors import InvalidRequest, InvalidScope, InvalidTarget
from idp.oauth.grants.token_exchange import (
    ACCESS_TOKEN_TYPE,
    MAX_ACT_DEPTH,
    TokenExchangeGrant,
    UnacceptableToken,
    actor_claim,
    binding,
    narrowed_scope,
    requested_type,
    target,
    token_param,
)
from idp.oauth.token.request import TokenRequest
from idp.services import Services
from tests.oauthkit import ISSUER, make_user, service_client, web_client

UP = "https://up.example"


def client(**kw: Any) -> Client:
    kw.setdefault("grant_types", [TOKEN_EXCHANGE])
    kw.setdefault("token_exchange_audiences", [UP])
    return Client("bff", "BFF", "web", "client_secret_basic", **kw)


def request(cl: Client, resources: list[str] | None = None, **params: str) -> TokenRequest:
    return TokenRequest(TOKEN_EXCHANGE, params, resources or [], cl, Headers())


def test_tokens_and_their_types_go_together_and_only_access_tokens() -> None:
    cl = client()
    assert token_param(request(cl), "subject_token", "subject_token_type") is None
    got = token_param(request(cl, subject_token="t", subject_token_type=ACCESS_TOKEN_TYPE), "subject_token",
                      "subject_token_type")  # fmt: skip
    assert got == "t"
    for params in (
        {"subject_token": "t"},
        {"subject_token_type": ACCESS_TOKEN_TYPE},
        {"subject_token": "t", "subject_token_type": "urn:ietf:params:oauth:token-type:jwt"},
        {"subject_token": "t", "subject_token_type": "urn:ietf:params:oauth:token-type:refresh_token"},
        {"subject_token": "t" * 9000, "subject_token_type": ACCESS_TOKEN_TYPE},
    ):
        with pytest.raises(InvalidRequest):
            token_param(request(cl, **params), "subject_token", "subject_token_type")


def test_requested_token_type() -> None:
    requested_type(None)
    requested_type(ACCESS_TOKEN_TYPE)
    requested_type("urn:ietf:params:oauth:token-type:jwt")
    for bad in ("urn:ietf:params:oauth:token-type:id_token", "urn:ietf:params:oauth:token-type:refresh_token", ""):
        with pytest.raises(InvalidRequest):
            requested_type(bad)


def test_the_target_is_one_registered_audience() -> None:
    cl = client(token_exchange_audiences=[UP, "https://two.example"])
    assert target(cl, UP, []) == UP
    assert target(cl, None, ["https://two.example"]) == "https://two.example"
    assert target(cl, UP, [UP]) == UP  # named twice, one target
    for audience, resources in ((None, []), ("https://evil.example", []), (UP, ["https://two.example"]),
                                (None, [UP, "https://two.example"]), (UP + "/", [])):  # fmt: skip
        with pytest.raises(InvalidTarget):
            target(cl, audience, resources)
    with pytest.raises(InvalidTarget):
        target(client(token_exchange_audiences=[]), UP, [])  # nothing registered: nothing to exchange for


def test_scope_narrows_only() -> None:
    assert narrowed_scope("a b c", None) == ["a", "b", "c"]
    assert narrowed_scope("a b c", "c a") == ["c", "a"]
    assert narrowed_scope(None, None) == []
    for held, asked in (("a b", "a d"), (None, "a"), (7, "a"), ("a", "a\x00")):
        with pytest.raises(InvalidScope):
            narrowed_scope(held, asked)


def test_act_names_the_client_and_the_actor_and_nests_the_prior_chain() -> None:
    cl = client()
    assert actor_claim(cl, {"sub": "u"}, None) == {"sub": "bff", "client_id": "bff"}
    assert actor_claim(cl, {"sub": "u"}, {"sub": "agent"}) == {"sub": "agent", "client_id": "bff"}
    prior = {"sub": "first", "client_id": "first"}
    assert actor_claim(cl, {"sub": "u", "act": prior}, None) == {"sub": "bff", "client_id": "bff", "act": prior}
    chain: dict[str, Any] = {"sub": "x"}
    for _ in range(MAX_ACT_DEPTH - 1):
        chain = {"sub": "x", "act": chain}
    with pytest.raises(UnacceptableToken):
        actor_claim(cl, {"sub": "u", "act": chain}, None)  # MAX_ACT_DEPTH prior actors: one more is too long
    with pytest.raises(UnacceptableToken):
        actor_claim(cl, {"sub": "u", "act": "bff"}, None)


def test_a_binding_is_kept_and_proven_never_dropped() -> None:
    assert binding({}, None) is None
    assert binding({}, "k1") == "k1"  # an unbound subject with a proof: bound to the proof
    assert binding({"cnf": {"jkt": "k1"}}, "k1") == "k1"
    for cnf, proof in (({"jkt": "k1"}, None), ({"jkt": "k1"}, "k2"), ({"x5t#S256": "t"}, "k1"), ("k1", "k1")):
        with pytest.raises(UnacceptableToken):
            binding({"cnf": cnf}, proof)


def test_refusals_of_tokens_are_invalid_request() -> None:
    assert UnacceptableToken("x").error == "invalid_request"  # RFC 8693 §2.2.2: MUST


def test_the_grant_is_for_confidential_clients_only() -> None:
    assert TokenExchangeGrant.public_clients is False and TokenExchangeGrant.grant_type == TOKEN_EXCHANGE


def test_a_subject_token_the_client_may_not_see_is_refused(container: Services) -> None:
    container.keyring.tick()
    bff, _ = web_client(container, grant_types=[TOKEN_EXCHANGE], token_exchange_audiences=[UP])
    other, _ = web_client(container, name="Other")
    user = make_user(container)
    at = container.access_tokens.issue(client_id=other.client_id, sub=user.id, audience=[f"{ISSUER}/api"], scope="a")
    req = request(bff, subject_token=at.token, subject_token_type=ACCESS_TOKEN_TYPE, audience=UP)
    with pytest.raises(UnacceptableToken, match="neither issued to nor addressed"):
        TokenExchangeGrant().issue(container, req)
    # ... unless its aud names the client.
    mine = container.access_tokens.issue(client_id=other.client_id, sub=user.id, audience=[bff.client_id], scope="a")
    req = request(bff, subject_token=mine.token, subject_token_type=ACCESS_TOKEN_TYPE, audience=UP)
    assert TokenExchangeGrant().issue(container, req)["scope"] == "a"


# -- registration --------------------------------------------------------------------------------------------


def test_exchange_audiences_are_https_uris_or_client_ids() -> None:
    assert validate_exchange_audiences([UP, "svc-1", UP]) == [UP, "svc-1"]
    for bad in (["http://up.example"], ["https://"], ["https://u@up.example"], ["https://up.example/#x"],
                ["urn:x:y"], ["has space"], [""], ["x" * 301], [7], ["https://up.example:99999999"]):  # fmt: skip
        with pytest.raises(ClientValidationError):
            validate_exchange_audiences(bad)  # type: ignore[arg-type]
    with pytest.raises(ClientValidationError):
        validate_exchange_audiences([f"https://a{i}.example" for i in range(21)])


def test_the_registry_refuses_the_idps_own_audiences_and_unknown_client_ids(container: Services) -> None:
    svc, _ = service_client(container)
    app, _ = web_client(container, token_exchange_audiences=[svc.client_id, f"{ISSUER}/api"])
    assert app.token_exchange_audiences == [svc.client_id, f"{ISSUER}/api"]
    for reserved in (ISSUER, f"{ISSUER}/admin", f"{ISSUER}/userinfo", "https://IDP.test:443/"):
        with pytest.raises(ClientValidationError, match="reserved"):
            web_client(container, token_exchange_audiences=[reserved])
        with pytest.raises(ClientValidationError, match="reserved"):
            container.clients.update(app.client_id, token_exchange_audiences=[reserved])
    with pytest.raises(ClientValidationError, match="not a registered client"):
        web_client(container, token_exchange_audiences=["nobody"])
    changed = container.clients.update(app.client_id, token_exchange_audiences=[UP])
    assert changed.token_exchange_audiences == [UP] and container.clients.get(app.client_id) == changed


def test_a_public_client_cannot_be_registered_for_token_exchange(container: Services) -> None:
    with pytest.raises(ClientValidationError, match="public clients cannot use token exchange"):
        container.clients.create(
            name="App", kind="native", redirect_uris=["http://127.0.0.1/cb"],
            grant_types=["authorization_code", TOKEN_EXCHANGE],
        )  # fmt: skip
