"""End to end: revoke at the IdP (CLI, sign-out-everywhere, key compromise) and an idp.resource API refuses
the token within a second; the stream survives drops and IdP restarts without missing a change; a silent
stream fails closed."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from idp.cli import main as cli_main
from idp.clock import FrozenClock
from idp.config import Settings
from idp.services import Services
from tests.integration.live_server import LiveServer
from tests.integration.resource_support import (
    API,
    ISSUER,
    api_client,
    bearer,
    eventually,
    feed_reader,
    idp_server,
    mint,
    protector_for,
    running_idp,
)

pytestmark = [pytest.mark.timing, pytest.mark.timeout(60)]  # live IdP, real streams


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"denylist_heartbeat_seconds": 0.5, "denylist_sync_seconds": 0.2}


@pytest.fixture
async def idp(container: Services) -> AsyncIterator[LiveServer]:
    async with running_idp(container) as server:
        yield server


async def status(api: httpx.AsyncClient, token: str, path: str = "/me") -> int:
    return (await api.get(path, headers=bearer(token))).status_code


async def test_sign_out_everywhere_reaches_the_api_within_a_second(
    idp: LiveServer, container: Services, clock: FrozenClock
) -> None:
    token, other_user = mint(container, clock), mint(container, clock, sub="u2")
    protector = protector_for(container, idp.url, clock)
    async with api_client(protector) as api:
        assert await status(api, token) == 200
        clock.advance(1)  # the cut-off is "issued before now"; frozen time would make them simultaneous
        signout = container.signout
        if signout is not None:  # the account page's "sign out everywhere"
            await asyncio.to_thread(signout.everything_for_user, "u1", actor="user:u1", reason="sign out everywhere")
        else:
            await asyncio.to_thread(container.denylist.deny, "subject", "u1", reason="sign out", actor="user:u1")

        async def refused() -> bool:
            return await status(api, token) == 401

        await eventually(refused, 1.0, "revoked token refused by the API")
        r = await api.get("/me", headers=bearer(token))
        assert r.headers["www-authenticate"].startswith('Bearer realm="api", error="invalid_token"')
        assert await status(api, other_user) == 200  # only that user's tokens
        clock.advance(1)
        assert await status(api, mint(container, clock)) == 200  # signing in again works


async def test_the_api_refuses_a_token_from_the_cut_offs_own_second_and_takes_one_minted_after_it(
    idp: LiveServer, container: Services, clock: FrozenClock
) -> None:
    clock.advance(0.2)
    stolen = mint(container, clock)  # issued at T + 0.2: iat T
    protector = protector_for(container, idp.url, clock)
    async with api_client(protector) as api:
        assert await status(api, stolen) == 200
        clock.advance(0.5)  # "sign out everywhere" at T + 0.7
        await asyncio.to_thread(container.denylist.deny, "subject", "u1", reason="sign out everywhere", actor="u1")
        clock.advance(0.2)  # signing in again at T + 0.9
        again = container.access_tokens.issue(client_id="c1", sub="u1", audience=[API], scope="api:read", sid="s2")
        assert again.claims["iat"] == int(clock.now()) + 1

        async def refused() -> bool:
            return await status(api, stolen) == 401

        await eventually(refused, 1.0, "a token from the cut-off's own second refused by the API")
        assert await status(api, again.token) == 200  # iat 0.1 s ahead: within the verifier's leeway


@pytest.mark.parametrize(("kind", "claim"), [("jti", "jti"), ("session", "sid"), ("client", "client_id")])
async def test_cli_deny_reaches_the_api_within_a_second(
    idp: LiveServer,
    container: Services,
    settings: Settings,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    kind: str,
    claim: str,
) -> None:
    """`idp deny` runs as another process would: its own container, no shared memory with the server."""
    for name in ("database_url", "redis_url", "redis_prefix", "kek", "issuer"):
        monkeypatch.setenv(f"IDP_{name.upper()}", str(getattr(settings, name)))
    # Issued a little before the CLI's cut-off (the CLI runs on the system clock).
    token = mint(container, clock, jti="jti-1", sid="sid-1", client_id="client-1", iat=int(clock.now()) - 5)
    protector = protector_for(container, idp.url, clock)
    async with api_client(protector) as api:
        assert await status(api, token) == 200
        value = {"jti": "jti-1", "sid": "sid-1", "client_id": "client-1"}[claim]
        code = await asyncio.to_thread(cli_main, ["deny", kind, value, "--reason", "incident 42", "--json"])
        assert code == 0, capsys.readouterr().err

        async def refused() -> bool:
            return await status(api, token) == 401

        await eventually(refused, 1.0, f"token refused after `idp deny {kind}`")
    assert "incident 42" in capsys.readouterr().out


async def test_stream_drop_resumes_from_last_event_id_without_missing_a_change(
    idp: LiveServer, container: Services, clock: FrozenClock
) -> None:
    tokens = [mint(container, clock) for _ in range(3)]
    protector = protector_for(container, idp.url, clock)
    follower = protector.follower
    assert follower is not None
    async with api_client(protector) as api:
        assert all([await status(api, t) == 200 for t in tokens])
        assert follower.snapshots == 1
        feed = container.denylist_feed
        for i, t in enumerate(tokens):
            # Drop every open stream, then revoke while the follower is away (it backs off >= 50 ms).
            idp_loop_call(idp, feed.end_streams)
            await asyncio.sleep(0.02)
            await asyncio.to_thread(container.denylist.deny, "jti", jwt_id(t), reason=f"drop {i}", actor="t")

        async def all_refused() -> bool:
            return all([await status(api, t) == 401 for t in tokens])

        await eventually(all_refused, 2.0, "every change made while disconnected arrives after reconnecting")
        assert follower.reconnects >= 1
        assert follower.snapshots == 1  # resumed with Last-Event-ID, no full refetch
        assert follower.version == container.denylist.version


async def test_idp_restart_is_survived(container: Services, clock: FrozenClock) -> None:
    server = idp_server(container)
    await server.astart()
    token, later = mint(container, clock), mint(container, clock, sub="u9")
    protector = protector_for(container, server.url, clock, stale_after=5.0)
    try:
        async with api_client(protector) as api:
            assert await status(api, token) == 200
            await server.astop()  # a deploy: the IdP goes away...
            await asyncio.to_thread(container.denylist.deny, "jti", jwt_id(token), reason="while down", actor="t")
            server = idp_server(container, server.port)  # ...and a new process comes up on the same address
            await server.astart()

            async def refused() -> bool:
                return await status(api, token) == 401

            await eventually(refused, 3.0, "change made while the IdP was down arrives after the restart")
            assert protector.follower is not None and protector.follower.snapshots == 1
            clock.advance(1)
            await asyncio.to_thread(container.denylist.deny, "subject", "u9", reason="after restart", actor="t")

            async def later_refused() -> bool:
                return await status(api, later) == 401

            await eventually(later_refused, 1.0, "the new stream delivers")
    finally:
        await server.astop()


@pytest.mark.parametrize("stale_status", [401, 503])
async def test_silent_stream_fails_closed(container: Services, clock: FrozenClock, stale_status: int) -> None:
    server = idp_server(container)
    await server.astart()
    token = mint(container, clock)
    protector = protector_for(container, server.url, clock, stale_after=0.5, stale_status=stale_status)
    try:
        async with api_client(protector) as api:
            assert await status(api, token) == 200
            await server.astop()  # nothing more can be heard

            async def closed() -> bool:
                return await status(api, token) == stale_status

            await eventually(closed, 2.0, "stale stream fails closed")
            assert protector.follower is not None
            assert time.monotonic() - protector.follower.last_heard > 0.5  # not before the bound
            r = await api.get("/me", headers=bearer(token))
            if stale_status == 401:
                assert 'error="invalid_token"' in r.headers["www-authenticate"]
            else:
                assert r.json()["error"] == "temporarily_unavailable" and r.headers["retry-after"]
            server = idp_server(container, server.port)
            await server.astart()

            async def open_again() -> bool:
                return await status(api, token) == 200

            await eventually(open_again, 3.0, "accepted again once the stream is back")
    finally:
        await server.astop()


async def test_compromised_key_is_refused_and_leaves_the_jwks(
    idp: LiveServer,
    container: Services,
    settings: Settings,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("database_url", "redis_url", "redis_prefix", "kek", "issuer"):
        monkeypatch.setenv(f"IDP_{name.upper()}", str(getattr(settings, name)))
    kid, _ = container.keyring.signer("ES256")
    token = mint(container, clock)
    protector = protector_for(container, idp.url, clock)
    async with api_client(protector) as api:
        assert await status(api, token) == 200
        clock.advance(2)  # the CLI's system clock dates the promoted key; keep the IdP's frozen clock past it
        assert await asyncio.to_thread(cli_main, ["keys", "revoke", kid]) == 0, capsys.readouterr().err

        async def refused() -> bool:
            return await status(api, token) == 401

        await eventually(refused, 1.0, "tokens signed by the compromised key refused")
        assert kid not in protector.jwks.kids()  # evicted from the API's cache at once
        clock.advance(3)  # the IdP's keyring re-reads its rows (keyring recheck interval)
        async with httpx.AsyncClient(base_url=idp.url) as http:
            jwks = (await http.get("/jwks.json")).json()
        assert kid not in [k["kid"] for k in jwks["keys"]]
        fresh = mint(container, clock)  # signed by the promoted key: unknown kid -> JWKS refetch
        assert await status(api, fresh) == 200


async def test_a_private_key_jwt_resource_server_follows_the_feed(
    idp: LiveServer, container: Services, clock: FrozenClock
) -> None:
    """The follower POSTs a fresh client assertion on every connection; the IdP accepts each once."""
    from joserfc.jwk import ECKey

    from idp.resource import PrivateKeyJwt

    key = ECKey.generate_key("P-256", parameters={"kid": "rs-1", "alg": "ES256", "use": "sig"})
    rs, _ = container.clients.create(
        name="Orders API", kind="service", scope="deny-list:read", audience=API, auth_method="private_key_jwt",
        jwks={"keys": [key.as_dict(private=False)]},
    )  # fmt: skip
    signer = PrivateKeyJwt(rs.client_id, key.as_pem(private=True), audience=ISSUER, key_id="rs-1", now=clock.now)
    tokens = [mint(container, clock) for _ in range(2)]
    protector = protector_for(container, idp.url, clock, client=signer)
    async with api_client(protector) as api:
        assert await status(api, tokens[0]) == 200
        await asyncio.to_thread(container.denylist.deny, "jti", jwt_id(tokens[0]), reason="", actor="t")

        def refused(token: str) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return await status(api, token) == 401

            return check

        await eventually(refused(tokens[0]), 1.0, "change applied over the private_key_jwt stream")
        idp_loop_call(idp, container.denylist_feed.end_streams)  # reconnect: a new assertion
        await asyncio.to_thread(container.denylist.deny, "jti", jwt_id(tokens[1]), reason="", actor="t")
        await eventually(refused(tokens[1]), 2.0, "resumed after reconnecting with a fresh assertion")
        assert protector.follower is not None and protector.follower.snapshots == 1


async def test_a_client_without_the_scope_learns_nothing_and_fails_closed(
    idp: LiveServer, container: Services, clock: FrozenClock
) -> None:
    token = mint(container, clock)
    protector = protector_for(container, idp.url, clock, client=feed_reader(container, scope="api:read"))
    await protector.start(wait=0.3)  # 403 from the feed: never synced
    async with api_client(protector) as api:
        assert protector.follower is not None and protector.follower.snapshots == 0
        assert await status(api, token) == 401  # stale from the start: fail closed
        follower = protector.follower

        async def refused_once() -> bool:  # the 403 arrives when the box gets to it, not within 0.3 s
            return follower.reconnects >= 1

        await eventually(refused_once, 10.0, "the feed's 403 is taken as a reason to back off and retry")
        assert follower.snapshots == 0 and await status(api, token) == 401


def jwt_id(token: str) -> str:
    import orjson

    from idp.crypto import b64url_decode

    return str(orjson.loads(b64url_decode(token.split(".")[1]))["jti"])


def idp_loop_call(server: LiveServer, fn: object) -> None:
    loop = server._loop
    assert loop is not None
    loop.call_soon_threadsafe(fn)  # type: ignore[arg-type]


if os.environ.get("IDP_TEST_VERBOSE_STREAM"):  # pragma: no cover - debugging aid
    import logging

    logging.getLogger("idp").setLevel(logging.DEBUG)
