"""Authorization codes: single use, a replay revokes what the code issued, binding, lifetime, concurrency."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from idp.services import Services
from tests.oauthkit import (
    RecordingDenyList,
    basic,
    exchange,
    get_code,
    make_user,
    refresh,
    sign_in_fast,
    stand_in,
    web_client,
)


async def _userinfo(client: httpx.AsyncClient, at: str) -> int:
    return (await client.get("/userinfo", headers={"authorization": f"Bearer {at}"})).status_code


async def test_replay_is_refused_and_revokes_the_tokens(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    sign_in_fast(container, client, make_user(container))
    code, verifier, _ = await get_code(client, web, scope="openid offline_access")
    first = await exchange(client, web, secret, code, verifier)
    assert first.status_code == 200
    tokens = first.json()
    assert await _userinfo(client, tokens["access_token"]) == 200
    again = await exchange(client, web, secret, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"  # RFC 6749 §4.1.2
    # ... and everything the first exchange issued is dead (ASVS V10.4.2).
    r = await refresh(client, web, secret, tokens["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert await _userinfo(client, tokens["access_token"]) == 401
    assert [e.action for e in container.audit.query(action="authorization_code_replay")]


async def test_replay_denies_the_access_token_jti(
    client: httpx.AsyncClient, container: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = RecordingDenyList()
    stand_in(monkeypatch, container.denylist, recorder)
    web, secret = web_client(container)
    sign_in_fast(container, client, make_user(container))
    code, verifier, _ = await get_code(client, web)
    tokens = (await exchange(client, web, secret, code, verifier)).json()
    jti = container.access_tokens.verify(tokens["access_token"], audience=None)[1]["jti"]
    await exchange(client, web, secret, code, verifier)
    assert [(k, v) for k, v, _, _ in recorder.calls] == [("jti", jti)]


async def test_late_replay_still_revokes(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    sign_in_fast(container, client, make_user(container))
    code, verifier, _ = await get_code(client, web, scope="openid offline_access")
    tokens = (await exchange(client, web, secret, code, verifier)).json()
    # An hour later the ephemeral "redeemed" marker is gone; the grant row remembers the code digest.
    container.clock.advance(3600)
    container.ephemeral.delete(f"code-used:{container.codes.digest(code).hex()}")
    again = await exchange(client, web, secret, code, verifier)
    assert again.status_code == 400
    assert (await refresh(client, web, secret, tokens["refresh_token"])).status_code == 400


async def test_code_is_bound_to_client_and_redirect_uri(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container, redirect_uris=["https://rp.example/cb", "https://rp.example/cb2"])
    other, other_secret = web_client(container)
    sign_in_fast(container, client, make_user(container))
    code, verifier, _ = await get_code(client, web)
    r = await exchange(client, other, other_secret, code, verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"  # RFC 6749 §4.1.3
    code, verifier, _ = await get_code(client, web)
    r = await exchange(client, web, secret, code, verifier, redirect_uri="https://rp.example/cb2")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    code, verifier, _ = await get_code(client, web)
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
    r = await client.post("/token", data=data, headers=basic(web.client_id, secret))  # redirect_uri omitted
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_code_expires_after_its_lifetime(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    sign_in_fast(container, client, make_user(container))
    code, verifier, _ = await get_code(client, web)
    container.clock.advance(container.settings.authorization_code_ttl + 1)
    r = await exchange(client, web, secret, code, verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert container.settings.authorization_code_ttl == 60


async def test_concurrent_exchanges_have_one_winner(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    sign_in_fast(container, client, make_user(container))
    code, verifier, _ = await get_code(client, web, scope="openid offline_access")
    results = await asyncio.gather(*[exchange(client, web, secret, code, verifier) for _ in range(6)])
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(200) <= 1 and statuses.count(400) >= 5, statuses
    for r in results:
        if r.status_code == 200:  # if a winner got through before the replays, it was revoked by them
            assert (await refresh(client, web, secret, r.json()["refresh_token"])).status_code == 400


async def test_codes_are_long_and_stored_hashed(client: httpx.AsyncClient, container: Services) -> None:
    web, _ = web_client(container)
    sign_in_fast(container, client, make_user(container))
    code, _, _ = await get_code(client, web)
    assert len(code) >= 43  # >= 256 bits, base64url
    assert container.ephemeral.get(f"code:{code}") is None
    digest = container.codes.digest(code).hex()
    assert container.ephemeral.get(f"code:{digest}") is not None
