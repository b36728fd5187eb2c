"""PKCE (RFC 7636) hardened: S256 only, required, downgrade-proof both ways."""

from __future__ import annotations

import httpx
import pytest

from idp.clients.model import ClientValidationError
from idp.services import Services
from tests.oauthkit import (
    ISSUER,
    auth_params,
    exchange,
    get_code,
    make_user,
    native_client,
    pkce_pair,
    query,
    sign_in_fast,
    web_client,
)


def _redirect_error(r: httpx.Response) -> str:
    assert r.status_code == 302, r.status_code
    q = query(r.headers["location"])
    assert q["iss"] == ISSUER and "code" not in q
    return q["error"]


@pytest.mark.parametrize("kind", ["native", "web"])
async def test_missing_challenge_is_invalid_request(client: httpx.AsyncClient, container: Services, kind: str) -> None:
    app = native_client(container) if kind == "native" else web_client(container)[0]
    r = await client.get("/authorize", params=auth_params(app, None))
    assert _redirect_error(r) == "invalid_request"  # RFC 9700 §2.1.1: required for every client by default


@pytest.mark.parametrize(
    ("method", "challenge"),
    [
        ("plain", "x" * 43),  # RFC 9700 §2.1.1: plain refused
        (None, "x" * 43),  # omitted method means plain (RFC 7636 §4.3)
        ("S512", "x" * 43),
        ("S256", "short"),
        ("S256", "x" * 42 + "!"),
    ],
)
async def test_only_well_formed_s256(
    client: httpx.AsyncClient, container: Services, method: str | None, challenge: str
) -> None:
    native = native_client(container)
    params = auth_params(native, None, code_challenge=challenge)
    if method:
        params["code_challenge_method"] = method
    assert _redirect_error(await client.get("/authorize", params=params)) == "invalid_request"


async def test_right_verifier_works_wrong_one_fails(client: httpx.AsyncClient, container: Services) -> None:
    native = native_client(container)
    sign_in_fast(container, client, make_user(container))
    code, verifier, _ = await get_code(client, native)
    r = await exchange(client, native, None, code, pkce_pair()[0])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"  # RFC 7636 §4.6
    code, verifier, _ = await get_code(client, native)
    r = await exchange(client, native, None, code, verifier)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("verifier", ["a" * 42, "a" * 129, "a" * 42 + " ", "ä" * 43])
async def test_verifier_shape_is_enforced(client: httpx.AsyncClient, container: Services, verifier: str) -> None:
    native = native_client(container)
    sign_in_fast(container, client, make_user(container))
    code, _, _ = await get_code(client, native)
    r = await exchange(client, native, None, code, verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"  # RFC 7636 §4.1


async def test_code_with_challenge_needs_a_verifier(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    sign_in_fast(container, client, make_user(container))
    code, _, _ = await get_code(client, web)
    r = await exchange(client, web, secret, code, None)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"  # downgrade: challenge, no verifier


async def test_code_without_challenge_refuses_a_verifier(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container, require_pkce=False)
    sign_in_fast(container, client, make_user(container))
    params = auth_params(web, None, nonce="n-1")
    r = await client.get("/authorize", params=params)
    code = query(r.headers["location"])["code"]
    r = await exchange(client, web, secret, code, pkce_pair()[0])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"  # RFC 9700 §4.8.2 downgrade defence
    r = await client.get("/authorize", params=params)
    code = query(r.headers["location"])["code"]
    r = await exchange(client, web, secret, code, None)
    assert r.status_code == 200, r.text  # the exempt confidential client, without PKCE


async def test_pkce_exemption_needs_a_nonce_and_openid(client: httpx.AsyncClient, container: Services) -> None:
    web, _ = web_client(container, require_pkce=False)
    sign_in_fast(container, client, make_user(container))
    assert _redirect_error(await client.get("/authorize", params=auth_params(web, None))) == "invalid_request"
    params = auth_params(web, None, nonce="n", scope="profile")
    assert _redirect_error(await client.get("/authorize", params=params)) == "invalid_request"


async def test_a_default_web_client_gets_no_exemption_for_openid_and_nonce(
    client: httpx.AsyncClient, container: Services
) -> None:
    web, _ = web_client(container)  # require_pkce on (the default)
    assert web.require_pkce
    sign_in_fast(container, client, make_user(container))
    params = auth_params(web, None, nonce="n-1", scope="openid profile")
    assert _redirect_error(await client.get("/authorize", params=params)) == "invalid_request"  # RFC 9700 §2.1.1


async def test_only_a_confidential_web_client_may_register_without_pkce(container: Services) -> None:
    for kind, extra in (("service", {"grant_types": ["authorization_code"]}), ("native", {})):
        with pytest.raises(ClientValidationError, match="without PKCE"):
            container.clients.create(name="x", kind=kind, redirect_uris=["https://rp.example/cb"], require_pkce=False,
                                     **extra)  # fmt: skip
    service, _ = container.clients.create(name="svc", kind="service", grant_types=["authorization_code"],
                                          redirect_uris=["https://rp.example/cb"])  # fmt: skip
    with pytest.raises(ClientValidationError, match="without PKCE"):
        container.clients.update(service.client_id, require_pkce=False)
