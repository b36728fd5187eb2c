"""The client record: what it shows, which grants and origins it allows, and the bounds on CORS origins."""

from __future__ import annotations

import re

import pytest

from idp.clients.model import (
    MAX_CORS_ORIGINS,
    MAX_URI,
    Client,
    ClientValidationError,
    origin_of,
    uri_chars_ok,
    validate_backchannel_logout_uri,
    validate_cors_origins,
    validate_redirect_uri,
)


def test_the_public_view_is_every_field_but_the_secret_digest() -> None:
    c = Client("c1", "Web", "web", "client_secret_basic", secret_digest=b"digest", jwks={"keys": []},
               redirect_uris=["https://a.example/cb"], post_logout_redirect_uris=["https://a.example/bye"],
               grant_types=["authorization_code"], scope="openid", audience="https://api.example",
               first_party=True, require_pkce=False, access_token_alg="RS256", id_token_alg="ES256",
               disabled=True, allowed_cors_origins=["https://b.example"], claims_in_id_token=True,
               dpop_bound_access_tokens=True,
               backchannel_logout_uri="https://a.example/bcl", backchannel_logout_session_required=True,
               token_exchange_audiences=["https://up.example"], created_at=1.0, updated_at=2.0)  # fmt: skip
    assert c.public_view() == {
        "client_id": "c1",
        "name": "Web",
        "type": "web",
        "auth_method": "client_secret_basic",
        "redirect_uris": ["https://a.example/cb"],
        "post_logout_redirect_uris": ["https://a.example/bye"],
        "grant_types": ["authorization_code"],
        "scope": "openid",
        "audience": "https://api.example",
        "first_party": True,
        "require_pkce": False,
        "access_token_alg": "RS256",
        "id_token_alg": "ES256",
        "jwks": {"keys": []},
        "disabled": True,
        "allowed_cors_origins": ["https://b.example"],
        "claims_in_id_token": True,
        "dpop_bound_access_tokens": True,
        "backchannel_logout_uri": "https://a.example/bcl",
        "backchannel_logout_session_required": True,
        "token_exchange_audiences": ["https://up.example"],
        "created_at": 1.0,
        "updated_at": 2.0,
    }


def test_grants_scopes_and_publicness() -> None:
    c = Client("c", "n", "web", "client_secret_post", grant_types=["authorization_code"], scope="openid  email")
    assert c.allows_grant("authorization_code") and not c.allows_grant("refresh_token")
    assert c.scopes == ["openid", "email"]
    assert not c.is_public and Client("p", "n", "native", "none").is_public


def test_a_public_clients_operator_origins_come_first_then_its_redirects() -> None:
    c = Client("p", "SPA", "native", "none", redirect_uris=["https://spa.example/cb", "http://127.0.0.1:5173/cb"],
               allowed_cors_origins=["https://extra.example"])  # fmt: skip
    # A loopback redirect names no page origin: a SPA on a developer's machine is added per client.
    assert c.cors_origins == ["https://extra.example", "https://spa.example"]


@pytest.mark.parametrize(
    ("uri", "origin"),
    [
        ("HTTPS://App.Example/cb", "https://app.example"),
        ("http://app.example:80/cb", "http://app.example"),  # each scheme's own default port
        ("http://app.example:443/cb", "http://app.example:443"),
        ("https://app.example:80/cb", "https://app.example:80"),
        ("https://[2001:DB8::1]:443/cb", "https://[2001:db8::1]"),
        ("https:///cb", None),  # no host
        ("ftp://app.example/x", None),
    ],
)
def test_origin_serialisation(uri: str, origin: str | None) -> None:
    assert origin_of(uri) == origin


def test_cors_origin_bounds() -> None:
    many = [f"https://a{i}.example" for i in range(MAX_CORS_ORIGINS)]
    assert validate_cors_origins(many) == many
    with pytest.raises(ClientValidationError, match=f"at most {MAX_CORS_ORIGINS} CORS origins"):
        validate_cors_origins([*many, "https://one-more.example"])
    host = "a" * (300 - len("https://.example")) + ".example"
    assert validate_cors_origins([f"https://{host}"]) == [f"https://{host}"]  # 300 characters
    with pytest.raises(ClientValidationError, match="at most 300 characters"):
        validate_cors_origins([f"https://a{host}"])
    with pytest.raises(ClientValidationError, match="must be a string"):
        validate_cors_origins([None])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("origin", "names"),
    [
        ("https://app.example/", "without a path"),
        ("https://app.example?", "without a path"),  # an empty query is still a query
        ("https://app.example#", "without a path"),
        ("https://u:p@app.example", "must not contain userinfo"),
        ("https://u@app.example", "must not contain userinfo"),
        ("http://app.example", "must be https (plain http only for loopback)"),
        ("http://127.0.0.1.evil.example", "must be https"),
    ],
)
def test_cors_origin_refusals_name_the_rule(origin: str, names: str) -> None:
    with pytest.raises(ClientValidationError, match=re.escape(names)):
        validate_cors_origins([origin])


def test_loopback_http_origins_are_allowed() -> None:
    given = ["http://127.0.0.1:5173", "http://[::1]:8080", "HTTP://LOCALHOST:3000"]
    assert validate_cors_origins(given) == ["http://127.0.0.1:5173", "http://[::1]:8080", "http://localhost:3000"]


def test_loopback_port_freedom_keeps_host_and_path() -> None:
    c = Client("n", "App", "native", "none", redirect_uris=["http://127.0.0.1/cb?x=1", "http://[::1]"])
    assert c.redirect_uri_allowed("http://127.0.0.1:5000/cb?x=1")
    assert not c.redirect_uri_allowed("http://127.0.0.1:5000/cb?x=2")
    assert not c.redirect_uri_allowed("http://[::1]:5000/cb?x=1")  # the other loopback address
    assert c.redirect_uri_allowed("http://[::1]:5000")
    assert not c.redirect_uri_allowed("http://127.0.0.1:5000")


@pytest.mark.parametrize(
    ("uri", "kind"),
    [
        ("com.example.app://host.example:8080/cb", "native"),
        ("com.example.app://[2001:db8::1]/cb", "native"),
        ("https://[2001:db8::1]:8443/cb", "web"),
        ("https://h/cb", "web"),  # a one-character host
        ("https://host.example?x=1", "web"),
    ],
)
def test_authorities_are_read_correctly(uri: str, kind: str) -> None:
    assert validate_redirect_uri(uri, kind) == uri


@pytest.mark.parametrize("uri", ["https://ex!ample.com/cb", "https://-shop.example/cb", "https://shop.example-/cb"])
def test_a_host_that_is_no_hostname_is_refused(uri: str) -> None:
    with pytest.raises(ClientValidationError, match="host"):
        validate_redirect_uri(uri, "web")


def test_a_redirect_uri_of_exactly_the_bound_is_registered_and_matches() -> None:
    uri = "https://shop.example/" + "a" * (MAX_URI - len("https://shop.example/"))
    assert len(uri) == MAX_URI and validate_redirect_uri(uri, "web") == uri
    assert uri_chars_ok(uri) and not uri_chars_ok(uri + "a")
    with pytest.raises(ClientValidationError, match=f"^redirect URI must be at most {MAX_URI} characters$"):
        validate_redirect_uri(uri + "a", "web")


def test_refusals_say_what_to_register_instead() -> None:
    with pytest.raises(ClientValidationError, match=r"not localhost \(RFC 8252 §8\.3\)$"):
        validate_redirect_uri("http://localhost:5000/cb", "native")
    with pytest.raises(ClientValidationError, match="must be an absolute URI$"):
        validate_redirect_uri("shop.example/cb", "web")
    with pytest.raises(
        ClientValidationError,
        match=r"must be https \(loopback http or a reverse-domain private-use scheme only for native clients\)$",
    ):
        validate_redirect_uri("com.example.app:/cb", "web")
    with pytest.raises(ClientValidationError, match="^a CORS origin must be a string of at most 300 characters$"):
        validate_cors_origins(["https://" + "a" * 300])


@pytest.mark.parametrize(
    "uri",
    ["https://rp.example/bcl", "https://rp.example:8443/a/b?x=1", "http://127.0.0.1:9000/bcl", "http://[::1]/bcl",
     "http://localhost:8000/logout"],
)  # fmt: skip
def test_a_backchannel_logout_uri_is_https_or_loopback_http(uri: str) -> None:
    assert validate_backchannel_logout_uri(uri) == uri  # BCL §2.2: port, path and query allowed


@pytest.mark.parametrize(
    "uri",
    ["https://rp.example/bcl#frag", "https://rp.example/bcl#", "http://rp.example/bcl", "ftp://rp.example/x",
     "https://user@rp.example/bcl", "/relative", "https://rp.example/ sp", "https://rp.example:99999/"],
)  # fmt: skip
def test_a_backchannel_logout_uri_with_a_fragment_plain_http_or_userinfo_is_refused(uri: str) -> None:
    with pytest.raises(ClientValidationError, match="backchannel_logout_uri"):
        validate_backchannel_logout_uri(uri)  # BCL §2.2: MUST NOT include a fragment


def test_no_backchannel_logout_uri_is_none() -> None:
    assert validate_backchannel_logout_uri(None) is None
    assert validate_backchannel_logout_uri("") is None
