"""Browser tests: Debian's Chromium driven by Playwright against the real server on a loopback port.

The server runs under uvicorn in a thread of this process (embedded SQLite + in-process
store, the system clock), so tests can look at its container directly. JavaScript is
off in every page: the hosted pages must work without it.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from idp.app import create_app
from idp.config import Settings
from idp.services import Services, build_services
from tests.browser.pages import page_server
from tests.conftest import _unavailable
from tests.integration.live_server import LiveServer, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).parent / "screenshots"
PASSWORD = "correct horse battery staple"
PHONE = {"width": 390, "height": 844}


@dataclass
class Live:
    url: str
    container: Services
    client_id: str
    client_secret: str
    rp: str  # the relying party's origin: a tiny HTTP server that answers every GET


@pytest.fixture(scope="session")
def chromium() -> str:
    if not os.path.exists(CHROMIUM):
        _unavailable(f"{CHROMIUM} (scripts/test-setup.sh installs it)")
    return CHROMIUM


@contextlib.contextmanager
def serve(
    sqlite_template: Path, tmp: Path, *, host: str = "127.0.0.1", scope: str = "openid profile email offline_access"
) -> Iterator[Live]:
    """The app on a loopback port with a fresh copy of the migrated database and one web client; the issuer
    names ``host`` (``localhost`` where the browser needs a domain, as WebAuthn does)."""
    db = tmp / "idp.sqlite3"
    shutil.copy(sqlite_template, db)
    rp_server, rp = page_server("RP", "Relying party")
    port = free_port()
    settings = Settings(
        issuer=f"http://{host}:{port}",
        database_url=f"sqlite:///{db}",
        kek=base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode(),
        kek_file=tmp / "kek",
        data_dir=tmp,
        demo=False,
    )  # type: ignore[call-arg]
    c = build_services(settings)
    client, secret = c.clients.create(
        name="Photo Book", kind="web", redirect_uris=[f"{rp}/callback"], post_logout_redirect_uris=[f"{rp}/bye"],
        scope=scope,
    )  # fmt: skip
    server = LiveServer(create_app(services=c), port).start()
    try:
        yield Live(f"http://{host}:{port}", c, client.client_id, secret or "", rp)
    finally:
        server.stop()
        c.close()
        rp_server.shutdown()
        rp_server.server_close()


@pytest.fixture(scope="module")
def live(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with serve(sqlite_template, tmp_path_factory.mktemp("browser")) as running:
        yield running


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def new_context(browser):  # type: ignore[no-untyped-def]
    """Factory for isolated browser profiles (desktop by default, ``phone=True`` for 390 px)."""
    made = []

    def make(*, phone: bool = False):  # type: ignore[no-untyped-def]
        kwargs = {"java_script_enabled": False, "viewport": PHONE if phone else {"width": 1280, "height": 860}}
        if phone:
            kwargs |= {"device_scale_factor": 2, "is_mobile": True, "has_touch": True}
        ctx = browser.new_context(**kwargs)
        ctx.set_default_timeout(10_000)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()


@pytest.fixture(scope="session")
def shot() -> object:
    SHOTS.mkdir(exist_ok=True)

    def save(page, name: str) -> Path:  # type: ignore[no-untyped-def]
        path = SHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 5_000  # something rendered
        return path

    return save
