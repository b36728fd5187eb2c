"""Redirect URIs at the authorization endpoint: exact match, loopback ports for native apps, never an open redirect."""

from __future__ import annotations

import httpx
import pytest

from idp.services import Services
from tests.oauthkit import (
    ISSUER,
    auth_params,
    get_code,
    make_user,
    native_client,
    pkce_pair,
    query,
    sign_in_fast,
    web_client,
)

BAD_WEB = [
    "https://rp.example/cb/",  # trailing slash
    "https://RP.example/cb",  # case change
    "https://rp.example/CB",
    "https://rp.example/cb?foo=bar",  # extra query
    "https://rp.example/cb/more",  # path suffix
    "https://user@rp.example/cb",  # userinfo
    "https://rp.example/cb#frag",  # fragment
    "https://rp.example:8443/cb",  # other port
    "http://rp.example/cb",  # scheme downgrade
    "https://evil.example/cb",
]


def _page_not_redirect(r: httpx.Response) -> None:
    assert r.status_code == 400, r.status_code
    assert "location" not in r.headers  # RFC 6749 §4.1.2.1: never redirect to an unvalidated URI
    assert r.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


@pytest.mark.parametrize("uri", BAD_WEB)
async def test_web_redirect_must_match_exactly(client: httpx.AsyncClient, container: Services, uri: str) -> None:
    web, _ = web_client(container)
    _, challenge = pkce_pair()
    _page_not_redirect(await client.get("/authorize", params=auth_params(web, challenge, redirect_uri=uri)))


async def test_unknown_client_and_missing_redirect_get_a_page(client: httpx.AsyncClient, container: Services) -> None:
    web, _ = web_client(container)
    _, challenge = pkce_pair()
    _page_not_redirect(await client.get("/authorize", params=auth_params(web, challenge, client_id="ghost")))
    params = auth_params(web, challenge)
    del params["redirect_uri"]
    _page_not_redirect(await client.get("/authorize", params=params))
    del params["client_id"]
    _page_not_redirect(await client.get("/authorize", params=params))
    container.client_admin.set_disabled(web.client_id, True, actor="test")
    _page_not_redirect(await client.get("/authorize", params=auth_params(web, challenge)))


async def test_other_clients_redirect_uri_is_refused(client: httpx.AsyncClient, container: Services) -> None:
    web, _ = web_client(container)
    other, _ = web_client(container, redirect_uris=["https://other.example/cb"])
    _, challenge = pkce_pair()
    params = auth_params(web, challenge, redirect_uri=other.redirect_uris[0])
    _page_not_redirect(await client.get("/authorize", params=params))


@pytest.mark.parametrize(
    "uri",
    ["http://127.0.0.1:51234/callback", "http://127.0.0.1:1/callback", "http://127.0.0.1/callback"],
)
async def test_native_loopback_any_port(client: httpx.AsyncClient, container: Services, uri: str) -> None:
    native = native_client(container)
    sid = sign_in_fast(container, client, make_user(container))
    container.approvals.approve(sid, native.client_id, uri)  # RFC 8252 §8.6: continued once in this session
    r = await client.get("/authorize", params=auth_params(native, pkce_pair()[1], redirect_uri=uri))
    assert r.status_code == 302
    assert r.headers["location"].startswith(uri + "?")  # RFC 8252 §7.3
    assert query(r.headers["location"])["iss"] == ISSUER


@pytest.mark.parametrize(
    "uri",
    [
        "http://localhost:51234/callback",  # RFC 8252 §8.3: the IP literal, not localhost
        "http://127.0.0.1:51234/other",  # path must match
        "http://127.0.0.1:51234/callback?x=1",
        "http://[::1]:51234/callback",  # registered for 127.0.0.1 only
        "https://127.0.0.1:51234/callback",
    ],
)
async def test_native_loopback_other_mismatches(client: httpx.AsyncClient, container: Services, uri: str) -> None:
    native = native_client(container)
    _page_not_redirect(await client.get("/authorize", params=auth_params(native, pkce_pair()[1], redirect_uri=uri)))


async def test_private_use_scheme_for_native(client: httpx.AsyncClient, container: Services) -> None:
    native = native_client(container, redirect_uris=["com.example.app:/oauth"])
    sign_in_fast(container, client, make_user(container))
    code, _, q = await get_code(client, native)
    assert code and q["iss"] == ISSUER


async def test_web_client_gets_no_loopback_latitude(client: httpx.AsyncClient, container: Services) -> None:
    web, _ = web_client(container, redirect_uris=["http://127.0.0.1:8080/cb"])
    params = auth_params(web, pkce_pair()[1], redirect_uri="http://127.0.0.1:9999/cb")
    _page_not_redirect(await client.get("/authorize", params=params))


RAW_VARIANTS = [
    "http://127.0.0.1:51234/call\tback",  # urlsplit drops TAB/CR/LF: they would reach Location (a 500)
    "http://127.0.0.1:51234/callback\r\nSet-Cookie: x=1",
    "http://127.0.0.1:51234/call\nback",
    "http://127.0.0.1:99999/callback",  # RFC 8252 §7.3: the port is 1-65535 in digits
    "http://127.0.0.1:0x50/callback",
    "http://127.0.0.1:12ab/callback",
    "http://127.0.0.1:0/callback",
    "http://127.0.0.1:51234/callback\x7f",  # DEL and non-ASCII cannot go in a header
    "http://127.0.0.1:51234/callback\u20ac",
    "http://127.0.0.1:51234/callback#",  # a fragment, even an empty one (RFC 6749 §3.1.2)
    "http://127.0.0.1:51234/callback#x",
    "http://:pw@127.0.0.1:5000/callback",  # userinfo
]


@pytest.mark.parametrize("uri", RAW_VARIANTS)
async def test_native_loopback_is_matched_on_the_raw_string(
    client: httpx.AsyncClient, container: Services, uri: str
) -> None:
    native = native_client(container)
    sign_in_fast(container, client, make_user(container))
    _page_not_redirect(await client.get("/authorize", params=auth_params(native, pkce_pair()[1], redirect_uri=uri)))


async def test_https_loopback_registration_gets_no_port_latitude(
    client: httpx.AsyncClient, container: Services
) -> None:
    native = native_client(container, redirect_uris=["https://127.0.0.1/cb"])
    sid = sign_in_fast(container, client, make_user(container))
    container.approvals.approve(sid, native.client_id, "https://127.0.0.1/cb")  # RFC 8252 §8.6: a local program
    for uri in ("http://127.0.0.1:1234/cb", "https://127.0.0.1:1234/cb", "http://127.0.0.1/cb"):
        params = auth_params(native, pkce_pair()[1], redirect_uri=uri)
        _page_not_redirect(await client.get("/authorize", params=params))
    r = await client.get("/authorize", params=auth_params(native, pkce_pair()[1]))
    assert r.status_code == 302 and r.headers["location"].startswith("https://127.0.0.1/cb?")
