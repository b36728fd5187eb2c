"""Pure rules of the OAuth package: PKCE, scope and audience policy, strict forms, client credential parsing."""

from __future__ import annotations

import base64

import pytest

from idp.clients.model import Client
from idp.errors import InvalidClient, InvalidGrant, InvalidRequest, InvalidScope, InvalidTarget
from idp.oauth import policy
from idp.oauth.client_auth import presented
from idp.oauth.forms import parse_pairs, single
from idp.oauth.grants import pkce


def _client(**kw: object) -> Client:
    base: dict[str, object] = {"client_id": "c", "name": "n", "kind": "web", "auth_method": "client_secret_basic",
                               "scope": "openid profile offline_access", "grant_types": ["authorization_code",
                               "refresh_token"]}  # fmt: skip
    return Client(**(base | kw))  # type: ignore[arg-type]


def test_s256_reference_vector() -> None:
    # RFC 7636 Appendix B
    assert pkce.s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_pkce_rules() -> None:
    c = _client()
    ok = {"code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"}
    assert pkce.check_challenge(c, ok) == (ok["code_challenge"], "S256")
    for bad in ({}, {"code_challenge": ok["code_challenge"]}, ok | {"code_challenge_method": "plain"},
                {"code_challenge_method": "S256"}):  # fmt: skip
        with pytest.raises(InvalidRequest):
            pkce.check_challenge(c, bad)
    exempt = _client(require_pkce=False)
    assert pkce.check_challenge(exempt, {"nonce": "n", "scope": "openid"}) == (None, None)
    with pytest.raises(InvalidRequest):
        pkce.check_challenge(_client(require_pkce=False, auth_method="none"), {"nonce": "n", "scope": "openid"})
    # The exemption is for confidential *web* clients only: a record of another kind never gets it.
    for kind in ("service", "native"):
        with pytest.raises(InvalidRequest):
            pkce.check_challenge(_client(require_pkce=False, kind=kind), {"nonce": "n", "scope": "openid"})
    with pytest.raises(InvalidRequest):  # require_pkce on: openid + nonce does not exempt
        pkce.check_challenge(_client(), {"nonce": "n", "scope": "openid"})
    pkce.verify(ok["code_challenge"], "S256", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
    pkce.verify(None, None, None)
    with pytest.raises(InvalidGrant):
        pkce.verify(None, None, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
    with pytest.raises(InvalidGrant):
        pkce.verify(ok["code_challenge"], "S256", None)
    with pytest.raises(InvalidGrant):
        pkce.verify(ok["code_challenge"], "S256", "x" * 43)
    with pytest.raises(InvalidRequest):
        pkce.verify(ok["code_challenge"], "S256", "x" * 42)


def test_scope_policy() -> None:
    c = _client()
    assert policy.resolve_scope(c, None) == ["openid", "profile", "offline_access"]
    assert policy.resolve_scope(c, "profile  openid profile") == ["profile", "openid"]
    for bad in ("email", "openid\tprofile", 'a"b'):
        with pytest.raises(InvalidScope):
            policy.resolve_scope(c, bad)


def test_audience_policy() -> None:
    c = _client(audience="https://a https://b")
    assert policy.resolve_audience(c, [], "https://d") == "https://a"
    assert policy.resolve_audience(c, ["https://b"], "https://d") == "https://b"
    assert policy.resolve_audience(_client(), [], "https://d") == "https://d"
    assert policy.resolve_audience(c, [], "https://d", fallback="https://b") == "https://b"
    for bad in (["https://d"], ["https://a", "https://b"]):
        with pytest.raises(InvalidTarget):
            policy.resolve_audience(c, bad, "https://d")
    assert policy.token_audiences("https://a", ["openid"], "https://iss") == ["https://a", "https://iss"]
    assert policy.token_audiences("https://a", ["api"], "https://iss") == ["https://a"]


def test_who_gets_refresh_tokens() -> None:
    assert policy.issues_refresh(_client(), ["api"])
    assert not policy.issues_refresh(_client(), ["openid"])
    assert policy.issues_refresh(_client(), ["openid", "offline_access"])
    assert policy.issues_refresh(_client(first_party=True), ["openid"])
    assert not policy.issues_refresh(_client(grant_types=["authorization_code"]), ["api"])


def test_forms() -> None:
    assert parse_pairs(b"a=1&b=&c=%20") == [("a", "1"), ("c", " ")]
    with pytest.raises(InvalidRequest):
        single(parse_pairs("a=1&a=2"))
    assert single(parse_pairs("resource=x&resource=y&a=1")) == {"resource": "x", "a": "1"}
    for bad in (b"\xff", b"a=%00", b"&".join(b"p%d=1" % i for i in range(100))):
        with pytest.raises(InvalidRequest):
            parse_pairs(bad)


def test_presented_credentials() -> None:
    basic = "Basic " + base64.b64encode(b"my%20client:s%3Acret").decode()
    cred = presented({"authorization": basic}, {})
    assert (cred.method, cred.client_id, cred.secret) == ("client_secret_basic", "my client", "s:cret")
    assert presented({}, {"client_id": "c", "client_secret": "s"}).method == "client_secret_post"
    assert presented({}, {"client_id": "c"}).method == "none"
    with pytest.raises(InvalidRequest):
        presented({"authorization": basic}, {"client_secret": "s", "client_id": "my client"})
    with pytest.raises(InvalidClient):
        presented({"authorization": basic}, {"client_id": "someone else"})
    with pytest.raises(InvalidClient):
        presented({}, {})
    with pytest.raises(InvalidClient):
        presented({"authorization": "Basic %%%"}, {})
