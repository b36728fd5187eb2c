"""RFC 9700 §4.1.3 exact matching; RFC 8252 §7 native-app redirects."""

from __future__ import annotations

import re

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


# -- the raw string decides (RFC 8252 §7.3: only the port varies) --------------------------------------------------
LOOPBACK_REFUSED = [
    "http://127.0.0.1:1234/c\tb",  # urlsplit drops TAB, CR and LF: the raw string still carries them
    "http://127.0.0.1:1234/cb\r\nSet-Cookie:x=1",
    "http://127.0.0.1:1234/c\nb",
    "http://127.0.0.1:1234/cb\x7f",  # DEL
    "http://127.0.0.1:1234/cb\x00",
    "http://127.0.0.1:1234/c\u00e9b",  # non-ASCII
    "http://127.0.0.1:1234/cb\u2028",
    "http://127.0.0.1:1234/c b",
    "http://127.0.0.1:99999/cb",  # port out of range
    "http://127.0.0.1:65536/cb",
    "http://127.0.0.1:0/cb",
    "http://127.0.0.1:0x50/cb",
    "http://127.0.0.1:12ab/cb",
    "http://127.0.0.1:/cb",
    "http://127.0.0.1:080/cb",
    "http://127.0.0.1:+80/cb",
    "http://127.0.0.1:1234/cb#x",  # a fragment, even an empty one
    "http://127.0.0.1:1234/cb#",
    "http://:pw@127.0.0.1:5000/cb",  # userinfo, even an empty user name
    "http://@127.0.0.1:5000/cb",
    "http://127.0.0.1:5000@evil.example/cb",
    "http://127.0.0.1\\@evil.example:5000/cb",
    "HTTP://127.0.0.1:5000/cb",
]


@pytest.mark.parametrize("uri", LOOPBACK_REFUSED)
def test_native_loopback_matching_reads_the_raw_string(uri: str) -> None:
    c = native("http://127.0.0.1/cb")
    assert c.redirect_uri_allowed("http://127.0.0.1:65535/cb")
    assert not c.redirect_uri_allowed(uri)


def test_a_registered_uri_with_bad_characters_never_matches() -> None:
    """A record written before these rules (or straight into the database) still cannot reach Location."""
    c = web("https://app.example.com/c\tb", "https://app.example.com/\u00e9")
    assert not c.redirect_uri_allowed("https://app.example.com/c\tb")
    assert not c.redirect_uri_allowed("https://app.example.com/\u00e9")


def test_port_freedom_only_for_http_loopback_registrations() -> None:
    c = native("https://127.0.0.1/cb", "com.example.app://127.0.0.1/cb")
    assert c.redirect_uri_allowed("https://127.0.0.1/cb")
    assert not c.redirect_uri_allowed("http://127.0.0.1:1234/cb")  # registered https: no port latitude
    assert not c.redirect_uri_allowed("https://127.0.0.1:1234/cb")
    assert not c.redirect_uri_allowed("http://127.0.0.1/cb")


def test_post_logout_redirects_match_the_raw_string_exactly() -> None:
    c = Client("c", "Web", "web", "client_secret_basic", post_logout_redirect_uris=["https://app.example.com/bye"])
    assert c.post_logout_redirect_uri_allowed("https://app.example.com/bye")
    for bad in ("https://app.example.com/bye\t", "https://app.example.com/bye/", "https://app.example.com/bye#"):
        assert not c.post_logout_redirect_uri_allowed(bad)
    legacy = Client("c", "Web", "web", "client_secret_basic", post_logout_redirect_uris=["https://a.example/\r\n"])
    assert not legacy.post_logout_redirect_uri_allowed("https://a.example/\r\n")


REGISTRATION_REFUSED = [  # (uri, kind, what the message names): the refusal comes from the rule meant for it
    ("javascript://127.0.0.1/%0aalert(1)", "native", "must be https"),  # non-http scheme on a loopback host
    ("javascript://127.0.0.1/%0aalert(1)", "web", "must be https"),
    ("com.example.app://127.0.0.1/cb", "native", "loopback"),
    ("com.example.app://[::1]/cb", "native", "loopback"),
    ("com.example.app://u@app/cb", "native", "userinfo"),
    ("https:///evil/cb", "web", "host"),  # no host
    ("https://u@host.example/cb", "web", "userinfo"),
    ("https://:p@host.example/cb", "web", "userinfo"),
    ("https://:@host.example/cb", "web", "userinfo"),
    ("https://@host.example/cb", "web", "userinfo"),
    ("https://host.example/cb#", "web", "fragment"),  # an empty fragment
    ("com.example.app:/cb#", "native", "fragment"),
    ("http://127.0.0.1/cb#", "native", "fragment"),
    ("https://host.example:99999/cb", "web", "port"),  # ports: 1-65535 in digits
    ("https://host.example:0/cb", "web", "port"),
    ("https://host.example:0x50/cb", "web", "port"),
    ("https://host.example:/cb", "web", "port"),
    ("http://127.0.0.1:12ab/cb", "native", "port"),
    ("http://127.0.0.1:65536/cb", "native", "port"),
    ("https://host.example/c\tb", "web", "printable"),  # characters no header can carry
    ("https://host.example/cb\r\n", "web", "printable"),
    ("https://host.example/cb\x7f", "web", "printable"),
    ("https://h\u00f6st.example/cb", "web", "printable"),
    ("https://host.example/c b", "web", "printable"),
    ("https://host.example\\@evil.example/cb", "web", "userinfo"),
    ("HTTPS://host.example/cb", "web", "lower case"),
    ("https:/host.example/cb", "web", "https://"),
    ("https://host.example/" + "a" * 2048, "web", "at most"),
    ("http://127.0.0.1.evil.example/cb", "native", "loopback host"),
    ("http://localhost:8080/cb", "native", "localhost"),
]


@pytest.mark.parametrize(("uri", "kind", "names"), REGISTRATION_REFUSED)
def test_registration_reads_the_raw_string(uri: str, kind: str, names: str) -> None:
    with pytest.raises(ClientValidationError, match=re.escape(names)):
        validate_redirect_uri(uri, kind)


@pytest.mark.parametrize(
    ("uri", "kind"),
    [
        ("https://host.example:8443/cb?x=1", "web"),
        ("https://[2001:db8::1]/cb", "web"),
        ("http://127.0.0.1:65535/cb", "native"),
        ("http://[::1]:1/cb", "native"),
        ("com.example.app://callback", "native"),
        ("Com.Example.App:/cb", "native"),
        ("http://localhost:3000/cb", "web"),
    ],
)
def test_registration_accepts_well_formed_uris(uri: str, kind: str) -> None:
    assert validate_redirect_uri(uri, kind) == uri
