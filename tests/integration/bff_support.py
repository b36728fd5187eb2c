"""A BFF wired to the in-process idp: the BFF's requests to idp and the browser's to both go over ASGI."""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager

from idp.bff.app import create_bff_app
from idp.bff.config import BffSettings
from idp.bff.context import Bff
from idp.clients.model import Client
from idp.services import Services
from idp.store.models import GrantRow, RefreshTokenRow
from idp.users.directory import User
from tests.oauthkit import ISSUER, PASSWORD, query, web_client
from tests.pagekit import field

ORIGIN = "https://app.test"
CALLBACK = f"{ORIGIN}/bff/callback"
BACKCHANNEL = f"{ORIGIN}/bff/backchannel"


@pytest.fixture(params=["sql", "other"])
def store_url(request: pytest.FixtureRequest, backend: Any, tmp_path: Path) -> str:
    """The BFF's store beside each backend: SQLite or in-process beside the embedded one, PostgreSQL or Redis
    beside PostgreSQL (import this fixture into a test module to run its tests over every store)."""
    if backend.name == "embedded":
        return f"sqlite:///{tmp_path / 'bff.sqlite3'}" if request.param == "sql" else "memory://"
    return backend.database_url if request.param == "sql" else backend.redis_url


def bff_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def own_address() -> str:
    """A browser address of one rig's own (an IPv6 /64 nobody else uses): the BFF's SQL tables and Redis keys
    outlive a test, and with them the per-address counters of sign-ins under way."""
    return f"2001:db8:{secrets.randbelow(65536):x}:{secrets.randbelow(65536):x}::1"


def bff_client(container: Services, **kw: Any) -> tuple[Client, str]:
    return web_client(
        container, redirect_uris=[CALLBACK], post_logout_redirect_uris=[f"{ORIGIN}/"],
        backchannel_logout_uri=BACKCHANNEL, **kw,
    )  # fmt: skip


@dataclass
class Rig:
    bff: Bff
    browser: httpx.AsyncClient
    client: Client
    settings: BffSettings
    bff_app: Any
    address: str  # the browser's, as the BFF sees it


@asynccontextmanager
async def bff_rig(
    app: Any,
    container: Services,
    *,
    store_url: str = "memory://",
    upstream_apps: Mapping[str, Any] | None = None,
    client_options: Mapping[str, Any] | None = None,
    address: str | None = None,
    **overrides: Any,
) -> AsyncIterator[Rig]:
    """``upstream_apps``: base URL -> ASGI app, reached by the BFF's client (idp's stays reachable too);
    ``address``: the browser's (default: one of this rig's own)."""
    address = address or own_address()
    client, secret = bff_client(container, **(client_options or {}))
    settings = BffSettings(
        issuer=ISSUER, client_id=client.client_id, client_secret=secret, origin=ORIGIN,
        encryption_key=bff_key(), store_url=store_url, **overrides,
    )  # fmt: skip
    idp_transport = httpx.ASGITransport(app=app)
    mounts: dict[str, httpx.AsyncBaseTransport] = {ISSUER: idp_transport}
    mounts.update({url: httpx.ASGITransport(app=a) for url, a in (upstream_apps or {}).items()})
    async with httpx.AsyncClient(mounts=mounts, follow_redirects=False) as http:
        bff_app = create_bff_app(settings, transport=idp_transport, http=http, clock=container.clock)
        async with LifespanManager(bff_app) as manager:
            to_bff = httpx.ASGITransport(app=manager.app, client=(address, 50000))
            browser_mounts = {ISSUER: idp_transport, ORIGIN: to_bff}
            async with httpx.AsyncClient(mounts=browser_mounts, base_url=ORIGIN) as browser:
                yield Rig(bff_app.state.bff, browser, client, settings, manager.app, address)


async def browse(browser: httpx.AsyncClient, url: str, *, until: str | tuple[str, ...]) -> httpx.Response:
    """Follow redirects like a browser (relative locations resolved against the page) until one starts with
    ``until``; that response, its location made absolute."""
    r = await browser.get(url)
    for _ in range(10):
        if r.status_code not in (302, 303):
            return r
        location = urljoin(str(r.url), r.headers["location"])
        r.headers["location"] = location
        if location.startswith(until):
            return r
        r = await browser.get(location)
    raise AssertionError("redirect loop")


async def sign_in(rig: Rig, user: User, *, return_to: str = "/orders?x=1") -> httpx.Response:
    """Through the BFF and idp's hosted login; returns the callback's response."""
    r = await rig.browser.get("/bff/login", params={"returnTo": return_to})
    assert r.status_code == 302, r.text
    r = await browse(rig.browser, r.headers["location"], until=(f"{ISSUER}/login", CALLBACK))
    if r.headers["location"].startswith(f"{ISSUER}/login"):
        page = await rig.browser.get(r.headers["location"])
        form = {"csrf": field(page.text, "csrf"), "username": user.username, "password": PASSWORD,
                "interaction": query(r.headers["location"])["interaction"]}  # fmt: skip
        r = await rig.browser.post(f"{ISSUER}/login", data=form, headers={"origin": ISSUER})
        assert r.status_code == 303, r.text
        r = await browse(rig.browser, urljoin(ISSUER, r.headers["location"]), until=CALLBACK)
    assert r.headers["location"].startswith(CALLBACK), r.headers.get("location")
    return await rig.browser.get(r.headers["location"])


class LateTransport(httpx.AsyncBaseTransport):
    """Sends idp's back-channel logout requests to an app chosen after idp has started (the BFF, which needs
    idp's transport first)."""

    def __init__(self) -> None:
        self.app: Any = None
        self.posts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert self.app is not None and request.url.path == "/bff/backchannel"
        self.posts += 1
        return await httpx.ASGITransport(app=self.app).handle_async_request(request)


@pytest.fixture
def to_bff() -> LateTransport:
    return LateTransport()


@pytest.fixture
async def app_delivering_to_bff(
    container: Services, to_bff: LateTransport, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Any]:
    """idp with its real back-channel logout sender (outbox, lease, logout token), its HTTP sent over ASGI
    to ``to_bff.app`` (the receiver's name is not resolved). Use as ``app = bff_support.app_delivering_to_bff``."""
    import idp.logout.feature as logout_feature
    from idp.app import create_app
    from idp.logout.target import Target

    real = logout_feature.make_sender

    def make_sender(services: Services, **kw: Any) -> Any:
        def resolver(uri: str) -> Target:
            return Target(url=uri, host="app.test", sni=None)

        return real(services, transport=to_bff, resolver=resolver, **kw)

    monkeypatch.setattr(logout_feature, "make_sender", make_sender)
    application = create_app(services=container)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30) as manager:
        yield manager.app


def rotations(container: Services, client_id: str) -> tuple[int, int]:
    """(refresh tokens idp has rotated, second uses it answered from its retry grace) for this client."""
    with container.engine.connect() as conn:
        row = conn.execute(
            sa.select(
                sa.func.count(RefreshTokenRow.rotated_at), sa.func.coalesce(sa.func.sum(RefreshTokenRow.grace_uses), 0)
            )
            .join(GrantRow, GrantRow.id == RefreshTokenRow.grant_id)
            .where(GrantRow.client_id == client_id)
        ).one()
    return int(row[0]), int(row[1])
