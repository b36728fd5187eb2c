"""RFC 7662 introspection at POST /introspect: authenticated callers only; every inactive, expired, revoked,
deny-listed or foreign token is exactly {"active": false}; active ones carry the RFC 7662 fields."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from idp.clock import FrozenClock
from idp.services import Services
from idp.tokens.jwt import peek_header
from tests.integration.test_revocation import claims_of, revoke
from tests.oauthkit import basic, make_user, native_client, refresh, service_client, tokens_for, web_client

INACTIVE = {"active": False}
API = "https://api.example"


async def introspect(http: httpx.AsyncClient, client_id: str, secret: str, token: str, **extra: str) -> dict[str, Any]:
    r = await http.post("/introspect", data={"token": token, **extra}, headers=basic(client_id, secret))
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    return r.json()  # type: ignore[no-any-return]


@pytest.fixture
def web(container: Services) -> tuple[Any, str]:
    return web_client(container)


@pytest.fixture
async def user_tokens(client: httpx.AsyncClient, container: Services, web) -> dict[str, Any]:
    app, secret = web
    return await tokens_for(container, client, app, secret, make_user(container))


async def cc_token(http: httpx.AsyncClient, client_id: str, secret: str) -> str:
    r = await http.post("/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, secret))
    assert r.status_code == 200, r.text
    return r.json()["access_token"]  # type: ignore[no-any-return]


async def test_callers_must_authenticate(client: httpx.AsyncClient, container: Services, user_tokens) -> None:
    at = user_tokens["access_token"]
    r = await client.post("/introspect", data={"token": at})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client" and "active" not in r.json()
    public = native_client(container)
    r = await client.post("/introspect", data={"token": at, "client_id": public.client_id})
    assert r.status_code == 401  # RFC 7662 §2.1: public clients cannot introspect
    svc, _ = service_client(container)
    r = await client.post("/introspect", data={"token": at}, headers=basic(svc.client_id, "wrong"))
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
    app, secret = web_client(container, name="X")
    r = await client.post("/introspect", data={}, headers=basic(app.client_id, secret))
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"  # no token parameter


async def test_active_access_token_for_its_client(
    client: httpx.AsyncClient, container: Services, web, user_tokens
) -> None:
    app, secret = web
    at = user_tokens["access_token"]
    body = await introspect(client, app.client_id, secret, at)
    claims = claims_of(at)
    assert body["active"] is True and body["token_type"] == "Bearer"
    for name in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat"):
        assert body[name] == claims[name], name


async def test_resource_server_sees_tokens_meant_for_it_and_no_others(
    client: httpx.AsyncClient, container: Services
) -> None:
    caller, caller_secret = service_client(container, name="Caller", audience=API)
    rs, rs_secret = service_client(container, name="Orders API", audience=API)
    stranger, stranger_secret = service_client(container, name="Stranger", audience="https://other.example")
    at = await cc_token(client, caller.client_id, caller_secret)
    assert claims_of(at)["aud"] == API
    assert (await introspect(client, rs.client_id, rs_secret, at))["active"] is True
    assert await introspect(client, stranger.client_id, stranger_secret, at) == INACTIVE  # foreign: nothing else


async def test_expired_token_is_inactive(
    client: httpx.AsyncClient, container: Services, clock: FrozenClock, web, user_tokens
) -> None:
    app, secret = web
    clock.advance(container.settings.access_token_ttl + 60)
    assert await introspect(client, app.client_id, secret, user_tokens["access_token"]) == INACTIVE


@pytest.mark.parametrize("path", ["revoke", "subject", "session", "client", "kid", "user_disabled", "client_disabled"])
async def test_every_revocation_path_is_reflected(
    client: httpx.AsyncClient, container: Services, clock: FrozenClock, web, path: str
) -> None:
    app, secret = web
    rs, rs_secret = service_client(container, name="The API", audience=container.settings.audience)
    user = make_user(container)
    at = (await tokens_for(container, client, app, secret, user))["access_token"]
    claims = claims_of(at)
    assert (await introspect(client, rs.client_id, rs_secret, at))["active"] is True
    clock.advance(1)  # cut-offs deny what was issued before them
    dl = container.denylist
    if path == "revoke":
        assert (await revoke(client, app.client_id, secret, at)).status_code == 200
    elif path == "subject":
        await asyncio.to_thread(dl.deny, "subject", claims["sub"], reason="sign out everywhere", actor="t")
    elif path == "session":
        await asyncio.to_thread(dl.deny, "session", claims["sid"], reason="logout", actor="t")
    elif path == "client":
        await asyncio.to_thread(dl.deny, "client", app.client_id, reason="incident", actor="t")
    elif path == "kid":
        header_kid = peek_header(at)["kid"]
        await asyncio.to_thread(dl.deny, "kid", header_kid, reason="compromised", actor="t")
    elif path == "user_disabled":
        await asyncio.to_thread(container.directory.set_disabled, user.username, True)
    else:
        await asyncio.to_thread(container.client_admin.set_disabled, app.client_id, True, actor="test")
    assert await introspect(client, rs.client_id, rs_secret, at) == INACTIVE


async def test_compromised_key_tokens_are_inactive(client: httpx.AsyncClient, container: Services) -> None:
    svc, secret = service_client(container)
    at = await cc_token(client, svc.client_id, secret)
    kid = peek_header(at)["kid"]
    await asyncio.to_thread(container.keyring.revoke, kid)  # unpublished: no longer verifies either
    assert await introspect(client, svc.client_id, secret, at) == INACTIVE


@pytest.mark.parametrize("token", ["nonsense", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "x" * 5000])
async def test_garbage_is_inactive(client: httpx.AsyncClient, web, token: str) -> None:
    app, secret = web
    assert await introspect(client, app.client_id, secret, token) == INACTIVE


async def test_an_id_token_is_not_an_access_token(client: httpx.AsyncClient, web, user_tokens) -> None:
    app, secret = web
    assert await introspect(client, app.client_id, secret, user_tokens["id_token"]) == INACTIVE


async def test_refresh_tokens(client: httpx.AsyncClient, container: Services, clock: FrozenClock, web) -> None:
    app, secret = web
    other, other_secret = web_client(container, name="Other")
    user = make_user(container)
    tokens = await tokens_for(container, client, app, secret, user)
    rt = tokens["refresh_token"]
    for hint in ("refresh_token", "access_token", "nonsense"):  # the hint is a hint
        body = await introspect(client, app.client_id, secret, rt, token_type_hint=hint)
        assert body["active"] is True and body["token_type"] == "refresh_token"
        assert body["client_id"] == app.client_id and body["sub"] == user.id and body["iss"] == "https://idp.test"
        assert body["scope"] and body["exp"] > clock.now() and body["iat"] <= clock.now()
    assert await introspect(client, other.client_id, other_secret, rt) == INACTIVE  # only its own client
    new_rt = (await refresh(client, app, secret, rt)).json()["refresh_token"]
    assert await introspect(client, app.client_id, secret, rt) == INACTIVE  # rotated
    assert (await introspect(client, app.client_id, secret, new_rt))["active"] is True
    clock.advance(1)
    await asyncio.to_thread(container.denylist.deny, "subject", user.id, reason="sign out everywhere", actor="t")
    assert await introspect(client, app.client_id, secret, new_rt) == INACTIVE


async def test_revoked_refresh_token_is_inactive(client: httpx.AsyncClient, container: Services, web) -> None:
    app, secret = web
    tokens = await tokens_for(container, client, app, secret, make_user(container))
    assert (await revoke(client, app.client_id, secret, tokens["refresh_token"])).status_code == 200
    for token in (tokens["refresh_token"], tokens["access_token"]):
        assert await introspect(client, app.client_id, secret, token) == INACTIVE


async def test_refresh_reuse_and_code_reuse_are_reflected(
    client: httpx.AsyncClient, container: Services, clock: FrozenClock, web
) -> None:
    """RFC 9700 §4.14.2 / RFC 6749 §4.1.2: detected replay revokes the family, and its access tokens go inactive."""
    from tests.oauthkit import exchange, get_code, sign_in_fast

    app, secret = web
    user = make_user(container)
    first = await tokens_for(container, client, app, secret, user)
    second = (await refresh(client, app, secret, first["refresh_token"])).json()
    clock.advance(container.settings.refresh_grace_seconds + 1)
    assert (await refresh(client, app, secret, first["refresh_token"])).status_code == 400  # replayed: theft
    for token in (second["access_token"], second["refresh_token"]):
        assert await introspect(client, app.client_id, secret, token) == INACTIVE

    sign_in_fast(container, client, user)
    code, verifier, _ = await get_code(client, app)
    at = (await exchange(client, app, secret, code, verifier)).json()["access_token"]
    assert (await introspect(client, app.client_id, secret, at))["active"] is True
    assert (await exchange(client, app, secret, code, verifier)).status_code == 400  # the code, again
    assert await introspect(client, app.client_id, secret, at) == INACTIVE


async def test_refresh_token_past_its_idle_lifetime_is_inactive(
    client: httpx.AsyncClient, container: Services, clock: FrozenClock, web
) -> None:
    """Idle (sliding) lifetime over, absolute lifetime not: introspection says inactive, as the token endpoint does."""
    app, secret = web
    rt = (await tokens_for(container, client, app, secret, make_user(container)))["refresh_token"]
    idle, absolute = container.settings.refresh_idle_ttl, container.settings.refresh_absolute_ttl
    assert idle + 10 < absolute
    clock.advance(idle - 1)
    body = await introspect(client, app.client_id, secret, rt)
    assert body["active"] is True and body["exp"] == int(clock.now()) + 1  # the idle deadline, not the absolute one
    clock.advance(1)
    assert await introspect(client, app.client_id, secret, rt) == INACTIVE  # RFC 7662 §2.2
    r = await refresh(client, app, secret, rt)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
