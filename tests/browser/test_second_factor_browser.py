"""Second factors in a real browser (JavaScript off): enrol TOTP from the account page with a code computed
from the secret the page shows, sign in with password + code through /authorize, sign in with a recovery
code. Screenshots of the enrolment, challenge and recovery pages go to /tmp/mfa-shots."""

from __future__ import annotations

import base64
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from idp.app import create_app
from idp.config import Settings
from idp.services import build_services
from idp.sessions.factors import totp
from idp.tokens import jwt
from tests.browser.conftest import PASSWORD, Live
from tests.browser.pages import page_server
from tests.browser.test_hosted_pages import authorize_url, exchange, fill_login, query
from tests.integration.live_server import LiveServer, free_port

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/mfa-shots")


def snap(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000


def code_for(live, secret: str, ahead: int = 0) -> str:  # type: ignore[no-untyped-def]
    """The code of the server's clock now (``ahead`` steps later: RFC 6238 §5.2 accepts one step ahead)."""
    return totp.code_at(secret, totp.step_at(live.container.clock.now()) + ahead)


def enrol(live, page, name: str) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    page.goto(f"{live.url}/account")
    fill_login(page, name, PASSWORD)
    assert page.url == f"{live.url}/account"
    page.get_by_role("button", name="Set up an authenticator app").click()
    assert page.locator("svg").count() >= 1  # the QR code, drawn by the server
    snap(page, f"{name}-01-enrol")
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("Code from the app").fill(code_for(live, secret))
    page.get_by_role("button", name="Turn on two-step verification").click()
    assert page.get_by_role("heading", name="Save your recovery codes").is_visible()
    snap(page, f"{name}-02-recovery-codes")
    codes = re.findall(r"[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}", page.locator("#recovery-codes").inner_text())
    assert len(codes) == 10
    page.get_by_role("link", name="I've saved them, continue").click()
    assert "Two-step verification is on" in page.content()
    snap(page, f"{name}-03-account")
    return secret, codes


def test_enrol_totp_then_sign_in_with_a_code(live, new_context) -> None:  # type: ignore[no-untyped-def]
    live.container.directory.create("tess", PASSWORD, email="tess@example.com", name="Tess")
    secret, _ = enrol(live, new_context().new_page(), "tess")

    page = new_context().new_page()
    url, verifier = authorize_url(live)
    page.goto(url)
    fill_login(page, "tess", PASSWORD)
    assert page.url == f"{live.url}/login/factor"
    snap(page, "tess-04-challenge")
    page.get_by_label("Authentication code").fill("000000" if code_for(live, secret, 1) != "000000" else "111111")
    page.get_by_role("button", name="Verify").click()
    assert "That code didn" in page.content()
    snap(page, "tess-05-challenge-error")
    page.get_by_label("Authentication code").fill(code_for(live, secret, 1))  # newer than the enrolment's step
    page.get_by_role("button", name="Verify").click()
    if page.url.startswith(f"{live.url}/consent"):
        page.get_by_role("button", name="Allow").click()
    page.wait_for_url(f"{live.rp}/callback?**")
    tokens = exchange(live, query(page.url)["code"], verifier)
    _, claims = jwt.verify(live.container.keyring, tokens["id_token"], typ="JWT", issuer=live.url,
                           audience=live.client_id, now=live.container.clock.now())  # fmt: skip
    assert claims["amr"] == ["pwd", "otp", "mfa"] and claims["acr"] == "urn:idp:acr:mfa"


def test_sign_in_with_a_recovery_code(live, new_context) -> None:  # type: ignore[no-untyped-def]
    live.container.directory.create("rosa", PASSWORD, email="rosa@example.com", name="Rosa")
    _, codes = enrol(live, new_context().new_page(), "rosa")
    page = new_context(phone=True).new_page()
    page.goto(f"{live.url}/account")
    fill_login(page, "rosa", PASSWORD)
    snap(page, "rosa-04-challenge-phone")
    page.get_by_role("link", name="Lost your phone? Use a recovery code").click()
    snap(page, "rosa-05-recovery-challenge-phone")
    page.get_by_role("textbox", name="Recovery code").fill(codes[0])
    page.get_by_role("button", name="Verify").click()
    assert page.url == f"{live.url}/account"
    assert "9 of 10 unused" in page.content()


@pytest.fixture(scope="module")
def live_required(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A server whose policy requires a second factor of everyone."""
    tmp = tmp_path_factory.mktemp("browser-required")
    shutil.copy(sqlite_template, tmp / "idp.sqlite3")
    rp_server, rp = page_server("RP", "Relying party")
    port = free_port()
    settings = Settings(
        issuer=f"http://127.0.0.1:{port}", database_url=f"sqlite:///{tmp / 'idp.sqlite3'}",
        kek=base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode(), kek_file=tmp / "kek",
        data_dir=tmp, demo=False, mfa_policy="required",
    )  # type: ignore[call-arg]  # fmt: skip
    c = build_services(settings)
    server = LiveServer(create_app(services=c), port).start()
    try:
        yield Live(server.url, c, "", "", rp)
    finally:
        server.stop()
        c.close()
        rp_server.shutdown()
        rp_server.server_close()


def test_grace_enrolment_when_required(live_required, new_context) -> None:  # type: ignore[no-untyped-def]
    live = live_required
    live.container.directory.create("gale", PASSWORD, email="gale@example.com", name="Gale")
    page = new_context().new_page()
    page.goto(f"{live.url}/account")
    fill_login(page, "gale", PASSWORD)
    assert page.url == f"{live.url}/login/enrol"
    snap(page, "gale-01-grace-enrol")
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("Code from the app").fill(code_for(live, secret))
    page.get_by_role("button", name="Turn on two-step verification").click()
    assert page.get_by_role("heading", name="Save your recovery codes").is_visible()
    page.get_by_role("link", name="I've saved them, continue").click()
    assert page.url == f"{live.url}/account" and "Authenticator app" in page.content()
