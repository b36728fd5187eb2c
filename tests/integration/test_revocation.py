"""RFC 7009 revocation at POST /revoke: client authentication, own tokens only, refresh tokens take their
family (and its live access tokens) with them, access tokens are deny-listed, unknown tokens get 200."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from idp.clock import FrozenClock
from idp.services import Services
from tests.oauthkit import (
    FORM,
    basic,
    make_user,
    native_client,
    refresh,
    service_client,
    tokens_for,
    web_client,
)


def claims_of(token: str) -> dict[str, Any]:
    import orjson

    from idp.crypto import b64url_decode

    return orjson.loads(b64url_decode(token.split(".")[1]))  # type: ignore[no-any-return]


async def revoke(
    http: httpx.AsyncClient, client_id: str, secret: str | None, token: str, **extra: str
) -> httpx.Response:
    data = {"token": token, **extra}
    headers = basic(client_id, secret) if secret else {}
    if not secret:
        data["client_id"] = client_id
    return await http.post("/revoke", data=data, headers=headers)


async def userinfo(http: httpx.AsyncClient, at: str) -> int:
    return (await http.get("/userinfo", headers={"authorization": f"Bearer {at}"})).status_code


@pytest.fixture
def web(container: Services) -> tuple[Any, str]:
    return web_client(container)


async def test_client_authentication_is_required(client: httpx.AsyncClient, container: Services, web) -> None:
    app, _ = web
    r = await client.post("/revoke", data={"token": "x"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = await client.post("/revoke", data={"token": "x"}, headers=basic(app.client_id, "wrong"))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.headers["www-authenticate"].startswith("Basic")  # RFC 6749 §5.2
    r = await client.post("/revoke", data={"token": "x", "client_id": app.client_id})  # confidential, no secret
    assert r.status_code == 401


async def test_malformed_requests(client: httpx.AsyncClient, web) -> None:
    app, secret = web
    r = await client.post("/revoke", data={}, headers=basic(app.client_id, secret))
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await client.post(
        "/revoke",
        content=b'{"token": "x"}',
        headers={**basic(app.client_id, secret), "content-type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await client.post("/revoke", content=b"token=a&token=b", headers={**basic(app.client_id, secret), **FORM})
    assert r.status_code == 400
    assert (await client.get("/revoke")).status_code == 405


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "x" * 600, "eyJhbGciOiJub25lIn0.e30."])
async def test_unknown_tokens_get_200(client: httpx.AsyncClient, container: Services, web, token: str) -> None:
    app, secret = web
    r = await revoke(client, app.client_id, secret, token or "unknown-token")
    assert r.status_code == 200 and r.content == b""  # RFC 7009 §2.2
    assert r.headers["cache-control"] == "no-store"
    assert container.denylist.list() == []


async def test_access_token_revocation_deny_lists_its_jti_until_exp(
    client: httpx.AsyncClient, container: Services, web
) -> None:
    app, secret = web
    tokens = await tokens_for(container, client, app, secret, make_user(container))
    at, rt = tokens["access_token"], tokens["refresh_token"]
    assert await userinfo(client, at) == 200
    r = await revoke(client, app.client_id, secret, at, token_type_hint="access_token")
    assert r.status_code == 200
    claims = claims_of(at)
    assert container.denylist.is_denied(claims)
    (entry,) = container.denylist.list()
    assert (entry.kind, entry.value) == ("jti", claims["jti"])
    assert claims["exp"] <= entry.expires_at <= claims["exp"] + 120  # kept until the token's exp (+ leeway)
    assert entry.actor == f"client:{app.client_id}"
    assert await userinfo(client, at) == 401
    # Revoking one access token leaves the grant alone.
    assert (await refresh(client, app, secret, rt)).status_code == 200


async def test_refresh_token_revocation_takes_the_family_and_its_live_access_tokens(
    client: httpx.AsyncClient, container: Services, web
) -> None:
    app, secret = web
    user = make_user(container)
    phone = await tokens_for(container, client, app, secret, user)
    laptop = await tokens_for(container, client, app, secret, user)
    rotated = (await refresh(client, app, secret, phone["refresh_token"])).json()
    r = await revoke(client, app.client_id, secret, rotated["refresh_token"], token_type_hint="refresh_token")
    assert r.status_code == 200
    r = await refresh(client, app, secret, rotated["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    for at in (phone["access_token"], rotated["access_token"]):  # every live AT of the family
        assert container.denylist.is_denied(claims_of(at))
        assert await userinfo(client, at) == 401
    # The other device's family is untouched.
    assert not container.denylist.is_denied(claims_of(laptop["access_token"]))
    assert (await refresh(client, app, secret, laptop["refresh_token"])).status_code == 200


@pytest.mark.parametrize("hint", ["access_token", "refresh_token", "bogus_type"])
async def test_token_type_hint_is_honoured_but_not_trusted(
    client: httpx.AsyncClient, container: Services, web, hint: str
) -> None:
    app, secret = web
    tokens = await tokens_for(container, client, app, secret, make_user(container))
    # Each token revoked with the same (possibly wrong or unknown) hint.
    assert (
        await revoke(client, app.client_id, secret, tokens["refresh_token"], token_type_hint=hint)
    ).status_code == 200
    assert (await refresh(client, app, secret, tokens["refresh_token"])).status_code == 400
    other = await tokens_for(container, client, app, secret, make_user(container, "bob"))
    assert (await revoke(client, app.client_id, secret, other["access_token"], token_type_hint=hint)).status_code == 200
    assert container.denylist.is_denied(claims_of(other["access_token"]))


async def test_a_client_may_revoke_only_its_own_tokens(client: httpx.AsyncClient, container: Services, web) -> None:
    app, secret = web
    other, other_secret = web_client(container, name="Other")
    tokens = await tokens_for(container, client, app, secret, make_user(container))
    for token in (tokens["access_token"], tokens["refresh_token"]):
        r = await revoke(client, other.client_id, other_secret, token)
        assert r.status_code == 200  # no oracle for someone else's token...
    assert container.denylist.list() == []  # ...and nothing revoked
    assert await userinfo(client, tokens["access_token"]) == 200
    assert (await refresh(client, app, secret, tokens["refresh_token"])).status_code == 200
    refused = container.audit.query(action="token.revoke_refused")
    assert len(refused) == 2 and all(e.actor == f"client:{other.client_id}" for e in refused)
    assert all(tokens["refresh_token"] not in str(e.detail) for e in refused)  # never the token itself


async def test_public_clients_revoke_their_own_tokens_with_client_id(
    client: httpx.AsyncClient, container: Services
) -> None:
    app = native_client(container)
    tokens = await tokens_for(container, client, app, None, make_user(container), scope="openid offline_access")
    assert "refresh_token" in tokens
    assert (await revoke(client, app.client_id, None, tokens["refresh_token"])).status_code == 200
    assert (await refresh(client, app, None, tokens["refresh_token"])).status_code == 400


async def test_expired_access_token_needs_no_entry(
    client: httpx.AsyncClient, container: Services, clock: FrozenClock
) -> None:
    svc, secret = service_client(container)
    r = await client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(svc.client_id, secret))
    at = r.json()["access_token"]
    clock.advance(container.settings.access_token_ttl + 120)
    assert (await revoke(client, svc.client_id, secret, at)).status_code == 200
    assert container.denylist.list() == []


async def test_client_credentials_token_revoked_by_its_service(client: httpx.AsyncClient, container: Services) -> None:
    svc, secret = service_client(container)
    r = await client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(svc.client_id, secret))
    at = r.json()["access_token"]
    assert (await revoke(client, svc.client_id, secret, at)).status_code == 200
    assert container.denylist.is_denied(claims_of(at))
