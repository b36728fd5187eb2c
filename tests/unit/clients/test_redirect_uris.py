"""RFC 9700 §4.1.3 exact matching; RFC 8252 §7 native-app redirects."""

from __future__ import annotations

import pytest

from idp.clients.model import Client, ClientValidationError, validate_redirect_uri


def web(*uris: str) -> Client:
    return Client("c", "Web", "web", "client_secret_basic", redirect_uris=list(uris))


def native(*uris: str) -> Client:
    return Client("n", "App", "native", "none", redirect_uris=list(uris))


REGISTERED = "https://app.example.com/cb"


@pytest.mark.parametrize(
    "candidate",
    [
        "https://app.example.com/cb/",  # trailing slash
        "https://APP.example.com/cb",  # case change
        "https://app.example.com/CB",
        "https://app.example.com/cb?foo=bar",  # extra query
        "https://app.example.com/cb/extra",  # path suffix
        "https://evil@app.example.com/cb",  # userinfo
        "https://app.example.com/cb#frag",  # fragment
        "https://app.example.com:8443/cb",  # different port
        "http://app.example.com/cb",  # scheme downgrade
        "https://app.example.com.evil.com/cb",
    ],
)
def test_web_redirects_match_exactly(candidate: str) -> None:
    assert web(REGISTERED).redirect_uri_allowed(REGISTERED)
    assert not web(REGISTERED).redirect_uri_allowed(candidate)


def test_native_loopback_any_port_same_path() -> None:
    c = native("http://127.0.0.1/callback", "http://[::1]/callback")
    assert c.redirect_uri_allowed("http://127.0.0.1:51234/callback")
    assert c.redirect_uri_allowed("http://127.0.0.1/callback")
    assert c.redirect_uri_allowed("http://[::1]:6000/callback")
    assert not c.redirect_uri_allowed("http://127.0.0.1:51234/other")
    assert not c.redirect_uri_allowed("http://localhost:51234/callback")  # localhost is not 127.0.0.1
    assert not c.redirect_uri_allowed("https://127.0.0.1:51234/callback")
    assert not c.redirect_uri_allowed("http://user@127.0.0.1:5000/callback")


def test_loopback_port_freedom_is_only_for_native_clients() -> None:
    c = web("http://127.0.0.1:3000/cb")
    assert c.redirect_uri_allowed("http://127.0.0.1:3000/cb")
    assert not c.redirect_uri_allowed("http://127.0.0.1:3001/cb")


def test_private_use_scheme_exact() -> None:
    c = native("com.example.app:/oauth/cb")
    assert c.redirect_uri_allowed("com.example.app:/oauth/cb")
    assert not c.redirect_uri_allowed("com.example.app:/oauth/cb2")


@pytest.mark.parametrize(
    ("uri", "kind"),
    [
        ("http://example.com/cb", "web"),  # RFC 9700 §2.6: https only
        ("http://example.com/cb", "native"),
        ("https://example.com/cb#x", "web"),
        ("com.example.app:/cb", "web"),  # private-use schemes only for native apps
        ("myapp:/cb", "native"),  # RFC 8252 §7.1: reverse-domain form
        ("http://localhost:8080/cb", "native"),  # RFC 8252 §8.3: use the IP literal
        ("https://u:p@example.com/cb", "web"),
        ("javascript:alert(1)", "native"),
    ],
)
def test_registration_rejects(uri: str, kind: str) -> None:
    with pytest.raises(ClientValidationError):
        validate_redirect_uri(uri, kind)


@pytest.mark.parametrize(
    ("uri", "kind"),
    [
        ("https://example.com/cb", "web"),
        ("http://127.0.0.1/cb", "native"),
        ("http://[::1]/cb", "native"),
        ("com.example.app:/cb", "native"),
        ("http://127.0.0.1:3000/cb", "web"),
    ],
)
def test_registration_accepts(uri: str, kind: str) -> None:
    assert validate_redirect_uri(uri, kind) == uri
