"""The token endpoint client: client_secret_basic encoding, error parsing, outage mapping."""

from __future__ import annotations

import base64

import httpx
import pytest

from idp.bff.token_endpoint import IdpUnavailable, TokenEndpoint, TokenError, basic_credentials, expires_in


def test_basic_credentials_form_encode_both_parts():
    # RFC 6749 §2.3.1: a ":" in the client id or secret must not split the pair.
    value = basic_credentials("my client:1", "p:ss/w+rd%")
    raw = base64.b64decode(value.removeprefix("Basic ")).decode()
    assert raw == "my%20client%3A1:p%3Ass%2Fw%2Brd%25"


def endpoint(handler) -> TokenEndpoint:
    return TokenEndpoint("https://idp.test/token", "c", "s", httpx.AsyncClient(transport=httpx.MockTransport(handler)))


async def test_posts_the_form_with_basic_auth():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"access_token": "t"})

    assert await endpoint(handler).post({"grant_type": "refresh_token", "refresh_token": "r t"}) == {
        "access_token": "t"
    }
    (r,) = seen
    assert r.headers["authorization"] == basic_credentials("c", "s")
    assert r.content == b"grant_type=refresh_token&refresh_token=r+t"
    assert r.extensions["timeout"] == {"connect": 10.0, "read": 10.0, "write": 10.0, "pool": 10.0}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"error": "invalid_grant"}, "invalid_grant"),
        ({"error": 'bad"quote'}, "invalid_request"),
        ({"error": "x" * 65}, "invalid_request"),
        ({"error": 7}, "invalid_request"),
        ({}, "invalid_request"),
    ],
)
async def test_error_responses(body, code):
    with pytest.raises(TokenError) as e:
        await endpoint(lambda r: httpx.Response(400, json=body)).post({})
    assert e.value.error == code and e.value.status == 400


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500),
        httpx.Response(504, json={"error": "invalid_grant"}),  # a gateway's 5xx is never a refusal
        httpx.Response(200, text="<html>"),
        httpx.Response(200, json=["not", "an", "object"]),
        httpx.Response(400, text="nope"),
    ],
)
async def test_outages(answer):
    with pytest.raises(IdpUnavailable):
        await endpoint(lambda r: answer).post({})


def test_expires_in():
    assert expires_in({"expires_in": 30}, 5) == 30
    for bad in [0, -1, "30", True, None]:
        assert expires_in({"expires_in": bad}, 5) == 5


async def test_a_discovered_url_is_looked_up_per_call_and_bounded():
    posted: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posted.append(str(request.url))
        return httpx.Response(200, json={"access_token": "t"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    lookups = 0

    async def found() -> str:
        nonlocal lookups
        lookups += 1
        return "https://idp.test/oauth/token"

    ep = TokenEndpoint(found, "c", "s", http, timeout=0.05)
    assert ep.bound == 0.1  # the lookup and the POST, each within the timeout: what a lease must outlive
    assert (await ep.post({"grant_type": "refresh_token"}))["access_token"] == "t"
    assert posted == ["https://idp.test/oauth/token"] and lookups == 1

    async def down() -> str:
        raise httpx.ConnectError("refused")

    with pytest.raises(IdpUnavailable, match="discovery"):
        await TokenEndpoint(down, "c", "s", http).post({"grant_type": "refresh_token"})

    async def times_out() -> str:  # what asyncio.timeout raises once the bound passes
        raise TimeoutError

    with pytest.raises(IdpUnavailable, match="in time"):
        await TokenEndpoint(times_out, "c", "s", http).post({"grant_type": "refresh_token"})
    assert posted == ["https://idp.test/oauth/token"]  # neither failure reached a token endpoint
