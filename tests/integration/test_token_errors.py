"""Token endpoint errors exactly as RFC 6749 §5.2, and never a 500 on malformed input."""

from __future__ import annotations

import httpx
import pytest

from idp.services import Services
from tests.oauthkit import (
    FORM,
    basic,
    exchange,
    get_code,
    make_user,
    native_client,
    post_pairs,
    service_client,
    sign_in_fast,
    web_client,
)


def _err(r: httpx.Response, status: int, error: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.json()["error"] == error, r.json()
    assert r.headers["cache-control"] == "no-store"  # RFC 6749 §5.1 on every response
    assert r.headers["content-type"] == "application/json"


@pytest.mark.parametrize("grant_type", ["password", "implicit", "urn:ietf:params:oauth:grant-type:device_code", "x"])
async def test_unsupported_grant_types(client: httpx.AsyncClient, container: Services, grant_type: str) -> None:
    svc, secret = service_client(container)
    data = {"grant_type": grant_type, "username": "a", "password": "b"}
    _err(await client.post("/token", data=data, headers=basic(svc.client_id, secret)), 400, "unsupported_grant_type")


async def test_missing_grant_type(client: httpx.AsyncClient, container: Services) -> None:
    _err(await client.post("/token", data={"client_id": "x"}), 400, "invalid_request")


async def test_form_urlencoded_only(client: httpx.AsyncClient, container: Services) -> None:
    svc, secret = service_client(container)
    r = await client.post("/token", json={"grant_type": "client_credentials"}, headers=basic(svc.client_id, secret))
    _err(r, 400, "invalid_request")
    r = await client.post(
        "/token", files={"grant_type": (None, "client_credentials")}, headers=basic(svc.client_id, secret)
    )
    _err(r, 400, "invalid_request")


async def test_repeated_parameters(client: httpx.AsyncClient, container: Services) -> None:
    svc, secret = service_client(container)
    pairs = [("grant_type", "client_credentials"), ("scope", "api:read"), ("scope", "api:write")]
    _err(await post_pairs(client, "/token", pairs, basic(svc.client_id, secret)), 400, "invalid_request")
    pairs = [("grant_type", "client_credentials"), ("grant_type", "client_credentials")]
    _err(await post_pairs(client, "/token", pairs, basic(svc.client_id, secret)), 400, "invalid_request")


async def test_two_authentication_methods_at_once(client: httpx.AsyncClient, container: Services) -> None:
    svc, secret = service_client(container)
    data = {"grant_type": "client_credentials", "client_id": svc.client_id, "client_secret": secret}
    r = await client.post("/token", data=data, headers=basic(svc.client_id, secret))
    _err(r, 400, "invalid_request")  # RFC 6749 §2.3: one method only


async def test_grant_not_registered_is_unauthorized_client(client: httpx.AsyncClient, container: Services) -> None:
    svc, secret = service_client(container)
    data = {"grant_type": "authorization_code", "code": "x", "redirect_uri": "https://rp.example/cb"}
    _err(await client.post("/token", data=data, headers=basic(svc.client_id, secret)), 400, "unauthorized_client")
    data = {"grant_type": "refresh_token", "refresh_token": "x"}
    _err(await client.post("/token", data=data, headers=basic(svc.client_id, secret)), 400, "unauthorized_client")


async def test_missing_required_parameters(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    auth = basic(web.client_id, secret)
    _err(await client.post("/token", data={"grant_type": "authorization_code"}, headers=auth), 400, "invalid_request")
    _err(await client.post("/token", data={"grant_type": "refresh_token"}, headers=auth), 400, "invalid_request")


async def test_unknown_code_and_token(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    auth = basic(web.client_id, secret)
    data = {"grant_type": "authorization_code", "code": "nope", "redirect_uri": web.redirect_uris[0]}
    _err(await client.post("/token", data=data, headers=auth), 400, "invalid_grant")
    data = {"grant_type": "refresh_token", "refresh_token": "nope"}
    _err(await client.post("/token", data=data, headers=auth), 400, "invalid_grant")


async def test_confidential_client_must_authenticate(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    sign_in_fast(container, client, make_user(container))
    code, verifier, _ = await get_code(client, web)
    r = await exchange(client, web, None, code, verifier)  # client_id only, no secret: ASVS V10.4.10
    _err(r, 401, "invalid_client")
    r = await exchange(client, web, "wrong", code, verifier)
    _err(r, 401, "invalid_client")
    assert r.headers["www-authenticate"].startswith("Basic")


async def test_public_client_with_a_secret_is_refused(client: httpx.AsyncClient, container: Services) -> None:
    native = native_client(container)
    data = {"grant_type": "authorization_code", "code": "x", "client_id": native.client_id, "client_secret": "s"}
    _err(await client.post("/token", data=data), 401, "invalid_client")


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"\xff\xfe", FORM),
        (b"grant_type=client_credentials&" + b"&".join(b"p%d=1" % i for i in range(100)), FORM),
        (b"grant_type=client_credentials", {**FORM, "authorization": "Basic !!!"}),
        (b"grant_type=client_credentials", {**FORM, "authorization": "Basic " + b"bm9jb2xvbg==".decode()}),
        (b"grant_type=client_credentials", {**FORM, "authorization": "Bearer abc"}),
        (b"grant_type=client_credentials&client_assertion_type=x&client_assertion=y", FORM),
        (
            b"grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type"
            b"%3Ajwt-bearer&client_assertion=a.b.c",
            FORM,
        ),
        (b"grant_type=refresh_token&client_id=" + b"x" * 500 + b"&refresh_token=" + b"y" * 5000, FORM),
        (b"grant_type=authorization_code&client_id=%00&code=%00", FORM),
    ],
)
async def test_malformed_bodies_never_500(
    client: httpx.AsyncClient, container: Services, body: bytes, headers: dict[str, str]
) -> None:
    r = await client.post("/token", content=body, headers=headers)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.json()["error"] in ("invalid_request", "invalid_client", "invalid_grant")
    assert r.headers["cache-control"] == "no-store"


async def test_get_is_not_allowed(client: httpx.AsyncClient) -> None:
    assert (await client.get("/token?grant_type=client_credentials")).status_code == 405
