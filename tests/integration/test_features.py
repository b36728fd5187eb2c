"""The app is what its features declare: routes in order, lifespan tasks entered and exited, event handlers
subscribed while it runs, the services in the lifespan state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from idp.app import DEFAULT_FEATURES, create_app
from idp.clients.model import TOKEN_EXCHANGE
from idp.events import UserDisabled
from idp.feature import Feature
from idp.oauth.token.grant import GrantRegistry
from idp.services import Services, services_of
from idp.tasks import every
from tests.conftest import ISSUER


def _probe(grants: GrantRegistry) -> list[Route]:
    """A route factory: it gets the app's grant registry, and its handler the services of the lifespan."""

    async def probe(request: Request) -> Response:
        return JSONResponse({"grant_types": grants.grant_types, "services": id(services_of(request))})

    return [Route("/probe", probe)]


async def _static_probe(request: Request) -> Response:
    return JSONResponse({"services": id(services_of(request))})


async def test_static_routes_and_route_factories_both_reach_the_services_of_the_lifespan(container: Services) -> None:
    static = Feature(name="static probe", routes=(Route("/static-probe", _static_probe),))
    app = create_app(services=container, features=(*DEFAULT_FEATURES, Feature(name="probe", routes=_probe), static))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
            probed = (await http.get("/probe")).json()
            served = ["authorization_code", "refresh_token", "client_credentials", TOKEN_EXCHANGE]
            assert probed == {"grant_types": served, "services": id(container)}
            assert (await http.get("/static-probe")).json() == {"services": id(container)}


async def test_tasks_handlers_and_state_follow_the_lifespan(container: Services) -> None:
    steps: list[str] = []
    heard: list[object] = []

    def task(name: str):  # type: ignore[no-untyped-def]
        @contextlib.asynccontextmanager
        async def run(services: Services) -> AsyncIterator[None]:
            steps.append(f"start {name}")
            yield
            steps.append(f"stop {name}")

        return run

    extra = Feature(
        name="probe",
        routes=_probe,
        tasks=(task("a"), task("b")),
        handlers=lambda s: [(UserDisabled, heard.append)],
    )
    app = create_app(services=container, features=(*DEFAULT_FEATURES, extra))
    async with LifespanManager(app) as manager:
        assert steps == ["start a", "start b"]
        transport = httpx.ASGITransport(app=manager.app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
            probed = (await http.get("/probe")).json()
            served = ["authorization_code", "refresh_token", "client_credentials", TOKEN_EXCHANGE]
            assert probed == {"grant_types": served, "services": id(container)}
        container.events.publish(UserDisabled("nobody", actor="test"))
    assert steps == ["start a", "start b", "stop b", "stop a"]  # exited in reverse
    container.events.publish(UserDisabled("nobody", actor="test"))
    assert heard == [UserDisabled("nobody", actor="test")]  # unsubscribed when the app stopped


def test_the_default_routes_keep_the_hot_endpoints_first(container: Services) -> None:
    paths = [getattr(r, "path", "") for r in create_app(services=container).routes]
    assert paths.index("/token") < paths.index("/.well-known/openid-configuration") < paths.index("/introspect")
    assert paths.index("/introspect") < paths.index("/revoke") < paths.index("/healthz") < paths.index("/login")


def test_a_feature_set_without_an_endpoint_the_document_requires_is_refused(container: Services) -> None:
    without = tuple(f for f in DEFAULT_FEATURES if f.name != "discovery")
    with pytest.raises(ValueError, match="jwks_uri"):
        create_app(services=container, features=without)


async def test_every_runs_in_the_threadpool_and_logs_failures(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def tick() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first tick fails")

    with caplog.at_level(logging.ERROR, logger="idp"):
        async with every(0.01, tick, name="probe tick"):
            while len(calls) < 3:
                await asyncio.sleep(0.01)
    assert "probe tick failed; will retry" in caplog.text
    count = len(calls)
    await asyncio.sleep(0.05)
    assert len(calls) == count  # stopped with the block


def test_the_client_change_follower_exists_only_with_a_shared_store(container: Services) -> None:
    assert (container.client_changes is None) == (container.clients.bus is None)
    assert (container.client_changes is None) == container.settings.embedded
