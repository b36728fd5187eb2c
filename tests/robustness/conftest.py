"""The ``site`` fixture: the app, its routes, and an in-process client that returns 500s instead of raising."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from anyio.from_thread import start_blocking_portal
from asgi_lifespan import LifespanManager

from idp.app import create_app
from idp.services import Services
from tests.robustness.kit import ISSUER, Site, SyncSite

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long runs of this folder are opt-in: ``-m slow`` (``make fuzz``) or IDP_FUZZ_EXAMPLES."""
    if "slow" in (config.getoption("-m") or "") or os.environ.get("IDP_FUZZ_EXAMPLES"):
        return
    skip = pytest.mark.skip(reason="long run: make fuzz (pytest tests/robustness -m slow)")
    for item in items:
        if "slow" in item.keywords and HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(skip)


@contextlib.asynccontextmanager
async def open_site(container: Services) -> AsyncIterator[Site]:
    application = create_app(services=container)
    # Generous timeouts: the box is shared with load runs, and a slow shutdown is not what we test here.
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER, follow_redirects=False) as http:
            yield Site(application, http, container)


@pytest.fixture
async def site(container: Services) -> AsyncIterator[Site]:
    async with open_site(container) as s:
        yield s


@pytest.fixture
def sync_site(container: Services) -> Iterator[SyncSite]:
    """The app on an event loop in a helper thread, driven by blocking calls (for hypothesis inside loops)."""
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(open_site(container)) as s:

        def request(method: str, url: httpx.URL | str, **kw: object) -> httpx.Response:
            return portal.call(functools.partial(s.http.request, method, url, **kw))  # type: ignore[arg-type]

        yield SyncSite(s, request)
