"""The hosted pages' plumbing: safe_next, the Origin check, cookies, the native-app CSP, field reading."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from starlette.datastructures import Headers, MultiDict
from starlette.responses import Response

from idp.peer import client_ip
from idp.web.middleware import CSP
from idp.web.pages.forms import (
    BadForm,
    clear_cookie,
    csp_for,
    one,
    safe_next,
    same_origin,
    see_other,
    set_cookie,
    user_agent,
)

ISSUER = "https://idp.example.com"


@pytest.mark.parametrize("value", ["/account", "/authorize/resume?interaction=abc", "/a/b#c", "/" + "a" * 511])
def test_safe_next_keeps_same_origin_paths(value):
    assert safe_next(value) == value


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "account",
        "//evil.example",
        "/\\evil.example",
        "/a b",
        "/caf\u00e9",
        "/a\x7f",
        "/a\tb",
        "https://evil.example/",
        "/" + "a" * 512,
    ],
)
def test_safe_next_refuses_everything_else(value):
    """RFC 9700 §4.11: never an open redirector."""
    assert safe_next(value) == "/account"
    assert safe_next(value, "/x") == "/x"


def request(headers: dict[str, str] | None = None, client: tuple[str, int] | None = ("192.0.2.1", 5000)):
    return SimpleNamespace(headers=Headers(headers or {}), client=SimpleNamespace(host=client[0]) if client else None)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"origin": "https://idp.example.com"}, True),
        ({"origin": "HTTPS://IDP.EXAMPLE.COM"}, True),
        ({"origin": "https://evil.example"}, False),
        ({"origin": "null", "referer": "https://evil.example/x"}, False),
        ({"origin": "null", "referer": "https://idp.example.com/login"}, True),
        ({"origin": "https://evil.example", "referer": "https://idp.example.com/login"}, False),
        ({"referer": "https://IDP.example.com/login?x=1"}, True),
        ({"referer": "https://evil.example/login"}, False),
        ({"origin": "null"}, True),
        ({}, True),
    ],
)
def test_same_origin(headers, expected):
    assert same_origin(request(headers), ISSUER) is expected


def pending(uri: str):
    return SimpleNamespace(params={"redirect_uri": uri})


def test_csp_allows_exactly_the_native_apps_scheme_in_form_action():
    """RFC 8252 §7.1: the redirect after the form post goes to the private-use scheme."""
    headers = csp_for(pending("com.Example.App:/cb"))
    expected = [d.strip() for d in CSP.split(";")]
    expected = [f"{d} com.example.app:" if d.startswith("form-action") else d for d in expected]
    assert headers == {"content-security-policy": "; ".join(expected)}
    assert "form-action 'self' http: https: com.example.app:;" in headers["content-security-policy"]


@pytest.mark.parametrize("uri", ["", "https://app.example/cb", "http://127.0.0.1/cb", "HTTPS://app/cb", "1bad:/x"])
def test_csp_is_the_default_for_web_redirects(uri):
    assert csp_for(pending(uri)) == {}
    assert csp_for(None) == {}
    assert csp_for(SimpleNamespace(params={})) == {}


def test_one_reads_a_single_field():
    assert one(MultiDict([("a", "1")]), "a") == "1"
    assert one(MultiDict([]), "a") == ""
    assert one(MultiDict([("a", "x" * 10)]), "a", 10) == "x" * 10
    assert one(MultiDict([("a", "x" * 4096)]), "a") == "x" * 4096


@pytest.mark.parametrize(
    ("pairs", "max_len"),
    [([("a", "1"), ("a", "2")], 10), ([("a", "x" * 11)], 10), ([("a", "x" * 4097)], None), ([("a", "a\x00")], 10)],
)
def test_one_refuses_repeated_oversized_or_nul_fields(pairs, max_len):
    with pytest.raises(BadForm):
        one(MultiDict(pairs), "a", *([max_len] if max_len else []))


def test_one_refuses_a_file_upload():
    with pytest.raises(BadForm, match="'a' is not acceptable"):
        one(MultiDict([("a", object())]), "a")


def cookies(response: Response) -> list[str]:
    return [v for k, v in response.raw_headers if k == b"set-cookie"]


def attrs(header: bytes) -> dict[str, str]:
    first, *rest = header.decode().split("; ")
    out = {"": first}
    for part in rest:
        k, _, v = part.partition("=")
        out[k.lower()] = v
    return out


def test_set_cookie_follows_the_host_prefix_rules():
    """RFC 6265bis §4.1.3.2: Secure, Path=/, no Domain; HttpOnly and SameSite=Lax as well."""
    response = Response()
    set_cookie(response, "__Host-x", "v1", 60)
    (header,) = cookies(response)
    assert attrs(header) == {
        "": "__Host-x=v1",
        "httponly": "",
        "max-age": "60",
        "path": "/",
        "samesite": "lax",
        "secure": "",
    }
    response = Response()
    set_cookie(response, "__Host-x", "v1", -5.5)  # an expiry already past: removed at once, never negative
    assert attrs(cookies(response)[0])["max-age"] == "0"
    response = Response()
    set_cookie(response, "__Host-x", "v1", 59.9)
    assert attrs(cookies(response)[0])["max-age"] == "59"


def test_clear_cookie_uses_the_same_attributes():
    response = Response()
    clear_cookie(response, "__Host-x")
    a = attrs(cookies(response)[0])
    assert a[""] == '__Host-x=""' and a["max-age"] == "0"
    assert {k: a[k] for k in ("httponly", "path", "samesite", "secure")} == {
        "httponly": "",
        "path": "/",
        "samesite": "lax",
        "secure": "",
    }
    assert "domain" not in a


def test_see_other_is_a_303_to_the_url():
    """RFC 9700 §4.12: never a 307 after a POST."""
    response = see_other("/account")
    assert response.status_code == 303 and response.headers["location"] == "/account"
    assert response.body == b""


def test_request_facts():
    assert client_ip(request()) == "192.0.2.1"
    assert client_ip(request(client=None)) == ""
    assert user_agent(request({"user-agent": "u" * 400})) == "u" * 300
    assert user_agent(request({"user-agent": "Firefox"})) == "Firefox"
    assert user_agent(request()) == ""
