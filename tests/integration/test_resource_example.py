"""examples/resource_server.py configured from the environment, against a live IdP: public and protected
routes, scopes, and the introspection fallback while the deny-list stream is broken but the IdP answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager

from examples.resource_server import app_from_env
from idp.clock import FrozenClock
from idp.services import Services
from tests.integration.live_server import LiveServer
from tests.integration.resource_support import API, ISSUER, bearer, eventually, mint, running_idp

pytestmark = [pytest.mark.timing, pytest.mark.timeout(60)]  # live IdP, real streams


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"denylist_heartbeat_seconds": 0.3}


@pytest.fixture
async def idp(container: Services) -> AsyncIterator[LiveServer]:
    async with running_idp(container) as server:
        yield server


async def test_example_api_with_introspection_fallback(
    idp: LiveServer, container: Services, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rs, secret = container.clients.create(name="Orders API", kind="service", scope="deny-list:read", audience=API)
    for name, value in {
        "IDP_ISSUER": ISSUER, "IDP_URL": idp.url, "API_AUDIENCE": API, "API_ON_STALE": "introspect",
        "API_CLIENT_ID": rs.client_id, "API_CLIENT_SECRET": secret or "", "API_STALE_AFTER": "1.0",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    app = app_from_env()
    protector = next(m.kwargs["protector"] for m in app.user_middleware)
    protector.verifier.clock = clock  # tokens are minted on the test's frozen clock
    protector.follower._clock = clock  # type: ignore[union-attr]
    cache_skew = [0.0]  # the introspection cache's monotonic clock, moved by the test instead of slept through
    protector.introspector._now = lambda: time.monotonic() + cache_skew[0]  # type: ignore[union-attr]
    caller, _ = container.clients.create(name="Caller", kind="service", scope="api:read", audience=API)
    as_caller = {"client_id": caller.client_id, "sub": caller.client_id}  # introspection checks they exist
    reader = mint(container, clock, scope="api:read", **as_caller)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app),
            base_url=API,  # type: ignore[arg-type]
        ) as api,
    ):
        assert (await api.get("/health")).status_code == 200
        assert (await api.get("/orders")).status_code == 401
        assert (await api.get("/orders", headers=bearer(reader))).status_code == 200
        r = await api.post("/orders", headers=bearer(reader))
        assert r.status_code == 403 and 'scope="api:write"' in r.headers["www-authenticate"]
        assert (await api.get("/me", headers=bearer(reader))).json()["scopes"] == ["api:read"]

        # Break the stream (the IdP still answers introspection): after 1 s of silence, ask the IdP.
        follower = protector.follower
        assert follower is not None and protector.introspector is not None
        follower.events_url = "http://127.0.0.1:9/deny-list/events"  # nothing listens there
        feed = container.denylist_feed

        async def silenced() -> bool:
            # A reconnect already under way to the old URL when it changed opens one more stream: end that too.
            feed.end_streams()
            return follower.is_stale()

        await eventually(silenced, 10.0, "the follower notices the silence")
        assert (await api.get("/orders", headers=bearer(reader))).status_code == 200
        assert protector.introspector.calls >= 1
        doomed = mint(container, clock, scope="api:read", **as_caller)
        assert (await api.get("/orders", headers=bearer(doomed))).status_code == 200
        await asyncio.to_thread(container.denylist.deny, "jti", _jti(doomed), reason="stolen", actor="t")
        cache_skew[0] += 1.1  # the introspection cache (1 s) runs out
        r = await api.get("/orders", headers=bearer(doomed))
        assert r.status_code == 401  # learnt from introspection, not from the (broken) stream
        assert follower.version < container.denylist.version


def _jti(token: str) -> str:
    from tests.integration.test_revocation import claims_of

    return str(claims_of(token)["jti"])


def test_example_dpop_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from idp.resource import RedisReplayCache

    for name, value in {
        "IDP_ISSUER": ISSUER, "API_AUDIENCE": API, "API_CLIENT_ID": "rs", "API_CLIENT_SECRET": "s",
        "API_PUBLIC_ORIGIN": "https://api.example.com", "API_DPOP_REQUIRED": "1",
        "API_REDIS_URL": "redis://127.0.0.1:6379/0",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    app = app_from_env()
    options = next(m.kwargs for m in app.user_middleware)
    assert options["public_origin"] == "https://api.example.com"
    protector = options["protector"]
    assert protector.dpop.required and isinstance(protector.dpop.verifier.replay, RedisReplayCache)
