"""A client change made by the CLI in another process holds on every worker as soon as the command returns.

The servers run under uvicorn (two instances over PostgreSQL + Redis, or the one embedded
server on its SQLite file); ``idp`` runs as a real subprocess against the same database, so
it shares no memory with them: only the store's change counter (SQLite) or the Redis
channel (with acknowledgements) can carry the change. Each assertion comes right after the
command returns, with no waiting, except at the resource server, which follows the deny-list
over the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import pytest

from idp.clock import FrozenClock
from idp.config import Settings
from idp.services import Services, build_services
from tests.integration.live_server import LiveServer
from tests.integration.resource_support import api_client, bearer, eventually, idp_server, protector_for
from tests.integration.resource_support import mint as mint_api_token
from tests.oauthkit import basic, make_user, service_client, web_client

CC = {"grant_type": "client_credentials"}


@pytest.fixture
async def workers(
    backend, settings: Settings, clock: FrozenClock, container: Services
) -> AsyncIterator[list[LiveServer]]:
    """The IdP's workers under uvicorn: two instances with Redis, the single embedded server otherwise."""
    container.keyring.tick()
    containers = [container]
    if backend.name == "postgres":
        containers.append(build_services(settings, clock=clock))
    async with contextlib.AsyncExitStack() as stack:
        servers = []
        for c in containers:
            server = await idp_server(c).astart()
            stack.push_async_callback(server.astop)
            servers.append(server)
        yield servers
    for c in containers[1:]:
        c.close()


async def cli(settings: Settings, *argv: str) -> str:
    """``idp ARGV`` in a process of its own; its stdout. Fails the test on a non-zero exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(
        IDP_DATABASE_URL=settings.database_url,
        IDP_REDIS_URL=settings.redis_url,
        IDP_REDIS_PREFIX=settings.redis_prefix,
        IDP_KEK=settings.kek,
        IDP_ISSUER=settings.issuer,
    )
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "idp.cli", *argv], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def client_credentials(url: str, client_id: str, secret: str) -> int:
    async with httpx.AsyncClient(base_url=url) as http:
        return (await http.post("/token", data=CC, headers=basic(client_id, secret))).status_code


async def userinfo(url: str, token: str) -> int:
    async with httpx.AsyncClient(base_url=url) as http:
        return (await http.get("/userinfo", headers=bearer(token))).status_code


async def test_a_secret_rotated_or_a_client_disabled_by_the_cli_holds_on_every_worker_when_it_returns(
    workers: list[LiveServer], settings: Settings, container: Services
) -> None:
    svc, secret = service_client(container)
    for w in workers:  # every worker has the client cached, on both paths (thread and inline)
        for _ in range(2):
            assert await client_credentials(w.url, svc.client_id, secret) == 200

    new = json.loads(await cli(settings, "clients", "rotate-secret", svc.client_id, "--json"))["client_secret"]
    for w in workers:
        assert await client_credentials(w.url, svc.client_id, secret) == 401  # the old secret: nowhere
        assert await client_credentials(w.url, svc.client_id, new) == 200

    await cli(settings, "clients", "disable", svc.client_id)
    for w in workers:
        assert await client_credentials(w.url, svc.client_id, new) == 401


async def test_a_client_deleted_by_the_cli_loses_its_live_tokens_like_the_admin_apis_delete(
    workers: list[LiveServer], settings: Settings, container: Services, clock: FrozenClock
) -> None:
    app, _ = web_client(container)
    user = make_user(container)
    issued = container.access_tokens.issue(
        client_id=app.client_id, sub=user.id, audience=[settings.issuer], scope="openid profile"
    )
    api_token = mint_api_token(container, clock, sub=user.id, client_id=app.client_id)
    protector = protector_for(container, workers[-1].url, clock, stale_after=30.0)
    async with api_client(protector) as api:
        assert (await api.get("/me", headers=bearer(api_token))).status_code == 200
        for w in workers:
            assert await userinfo(w.url, issued.token) == 200

        await cli(settings, "clients", "delete", app.client_id)
        for w in workers:
            assert await userinfo(w.url, issued.token) == 401

        async def refused() -> bool:
            return (await api.get("/me", headers=bearer(api_token))).status_code == 401

        await eventually(refused, 3.0, "the deleted client's token refused by idp.resource")
        assert protector.follower is not None
        assert protector.follower.is_denied({"client_id": app.client_id, "iat": int(clock.now()) + 60})
    assert [e.value for e in container.denylist.list() if e.kind == "client"] == [app.client_id]
    assert [e.client_id for e in container.audit.query(action="client.deleted")] == [app.client_id]
