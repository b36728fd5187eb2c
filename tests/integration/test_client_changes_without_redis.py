"""PostgreSQL with the in-process store (one worker, no Redis): a client change the CLI makes in another
process holds at the server as soon as the command returns, through the store's change counter alone."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from idp.config import Settings
from idp.services import Services
from idp.store.clients_repo import PgClientsVersion
from tests.integration.live_server import LiveServer
from tests.integration.resource_support import idp_server
from tests.integration.test_client_changes import cli, client_credentials
from tests.oauthkit import service_client

pytestmark = pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"redis_url": ""}


@pytest.fixture
async def server(container: Services) -> AsyncIterator[LiveServer]:
    container.keyring.tick()
    live = await idp_server(container).astart()
    try:
        yield live
    finally:
        await live.astop()


def test_the_registry_reads_the_counter_on_postgresql_without_redis(container: Services) -> None:
    assert container.settings.embedded and container.clients.bus is None
    version = container.clients.version
    assert isinstance(version, PgClientsVersion)
    before = version()
    svc, _ = service_client(container)
    container.client_admin.rotate_secret(svc.client_id, actor="test")
    assert version() == before + 2  # the creation and the rotation, each counted in its own transaction


async def test_a_secret_rotated_or_a_client_disabled_by_the_cli_holds_at_once(
    server: LiveServer, settings: Settings, container: Services
) -> None:
    svc, secret = service_client(container)
    for _ in range(3):  # cached by the registry and the token endpoint's hot clients
        assert await client_credentials(server.url, svc.client_id, secret) == 200

    new = json.loads(await cli(settings, "clients", "rotate-secret", svc.client_id, "--json"))["client_secret"]
    assert await client_credentials(server.url, svc.client_id, secret) == 401  # the old secret, right away
    assert await client_credentials(server.url, svc.client_id, new) == 200

    await cli(settings, "clients", "disable", svc.client_id)
    assert await client_credentials(server.url, svc.client_id, new) == 401
