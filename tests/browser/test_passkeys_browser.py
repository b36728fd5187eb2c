"""Passkeys in a real browser: Chromium's virtual authenticator (CTAP2, internal transport, resident keys, user
verification) through the DevTools protocol, JavaScript on. Real ceremonies end to end: register from the
account page, sign in passwordless (through /authorize: the ID token's ``amr``), use the passkey as the second
factor after the password, remove it. Screenshots go to /tmp/passkey-shots.

WebAuthn needs a secure context and an RP ID that is a domain, so the issuer here is ``http://localhost:port``
(browsers treat localhost as secure; an IP address is never a valid RP ID).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from idp.interaction import SESSION_COOKIE
from tests.browser.conftest import PASSWORD, Live, serve
from tests.browser.test_hosted_pages import query

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/passkey-shots")
AUTHENTICATOR = {
    "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
    "isUserVerified": True, "automaticPresenceSimulation": True,
}  # fmt: skip


def snap(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000


@pytest.fixture(scope="module")
def live(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with serve(
        sqlite_template, tmp_path_factory.mktemp("passkeys"), host="localhost", scope="openid profile"
    ) as running:
        yield running


@pytest.fixture
def context(browser):  # type: ignore[no-untyped-def]
    """JavaScript on (the ceremonies need it) and a virtual authenticator on the page."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    ctx.set_default_timeout(10_000)
    page = ctx.new_page()
    cdp = ctx.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    authenticator = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})["authenticatorId"]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield page, cdp, authenticator
    ctx.close()
    assert not [e for e in errors if "Content Security Policy" in e], errors  # the script runs under our CSP


def fill_login(page, username: str, password: str) -> None:  # type: ignore[no-untyped-def]
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def register(live, page, name: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live.url}/account")
    fill_login(page, name, PASSWORD)
    assert page.url == f"{live.url}/account"
    page.get_by_label("Passkey name").fill("Virtual key")
    snap(page, f"{name}-01-account-add-passkey")
    page.get_by_role("button", name="Add a passkey").click()
    page.wait_for_url(f"{live.url}/account?done=passkey_added#passkeys")
    assert "Passkey added" in page.content()
    assert page.get_by_text("Virtual key").first.is_visible()
    snap(page, f"{name}-02-account-passkey-added")


def signed_out(page) -> None:  # type: ignore[no-untyped-def]
    page.context.clear_cookies()


def user_id(live, name: str) -> str:  # type: ignore[no-untyped-def]
    return live.container.directory.create(name, PASSWORD, email=f"{name}@example.com", name=name.title()).id


def test_register_then_sign_in_passwordless_through_authorize(live, context) -> None:  # type: ignore[no-untyped-def]
    page, cdp, authenticator = context
    uid = user_id(live, "paula")
    register(live, page, "paula")
    [passkey] = live.container.passkeys.list(uid)
    assert passkey.name == "Virtual key" and passkey.transports == ("internal",)
    [credential] = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert credential["isResidentCredential"]  # discoverable: no username needed to sign in

    signed_out(page)
    verifier = secrets.token_urlsafe(48)
    import hashlib

    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "response_type": "code", "client_id": live.client_id, "redirect_uri": f"{live.rp}/callback",
        "scope": "openid profile", "state": "st-1", "code_challenge": challenge, "code_challenge_method": "S256",
    }  # fmt: skip
    # Conditional UI: the page asks for a passkey as it loads (mediation "conditional"); with the person's
    # presence held back, the request waits and the page shows its button.
    cdp.send("WebAuthn.setAutomaticPresenceSimulation", {"authenticatorId": authenticator, "enabled": False})
    page.goto(f"{live.url}/authorize?{urlencode(params)}")
    assert page.url.startswith(f"{live.url}/login?interaction=")
    button = page.get_by_role("button", name="Sign in with a passkey")
    button.wait_for(state="visible")
    assert page.get_by_label("Username").get_attribute("autocomplete") == "username webauthn"
    snap(page, "paula-03-login-with-passkey")
    cdp.send("WebAuthn.setAutomaticPresenceSimulation", {"authenticatorId": authenticator, "enabled": True})
    if page.url.startswith(f"{live.url}/login"):
        button.click()
    page.wait_for_url(f"{live.url}/consent?**")
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(f"{live.rp}/callback?**")
    q = query(page.url)
    r = httpx.post(
        f"{live.url}/token",
        data={"grant_type": "authorization_code", "code": q["code"], "redirect_uri": f"{live.rp}/callback",
              "code_verifier": verifier},
        auth=(live.client_id, live.client_secret),
    )  # fmt: skip
    assert r.status_code == 200, r.text
    claims = _claims(r)
    assert claims["sub"] == uid
    assert claims["amr"] == ["hwk", "user", "mfa"]  # RFC 8176: a hardware-bound key, user verification: two factors
    assert claims["acr"] == "urn:idp:acr:mfa"
    assert live.container.passkeys.list(uid)[0].sign_count >= 1


def _claims(r: httpx.Response) -> dict:
    import json

    payload = r.json()["id_token"].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_a_passkey_as_the_second_factor_then_removed(live, context) -> None:  # type: ignore[no-untyped-def]
    page, cdp, authenticator = context
    uid = user_id(live, "sam")
    register(live, page, "sam")

    signed_out(page)
    presence = {"authenticatorId": authenticator, "enabled": False}
    cdp.send("WebAuthn.setAutomaticPresenceSimulation", presence)  # no passwordless autofill: type the password
    page.goto(f"{live.url}/account")
    fill_login(page, "sam", PASSWORD)
    assert page.url == f"{live.url}/login/factor"  # a passkey is a second factor: asked for after the password
    button = page.get_by_role("button", name="Use a passkey")
    button.wait_for(state="visible")
    snap(page, "sam-03-second-factor-passkey")
    cdp.send("WebAuthn.setAutomaticPresenceSimulation", presence | {"enabled": True})
    button.click()
    page.wait_for_url(f"{live.url}/account")
    session = max(live.container.login_sessions.list_for_user(uid), key=lambda s: s.auth_time)
    assert session.amr[:2] == ("pwd", "hwk") and "mfa" in session.amr
    assert [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]

    page.get_by_role("button", name="Remove Virtual key").click()
    page.wait_for_url(f"{live.url}/account?done=passkey_removed#passkeys")
    assert "Passkey removed" in page.content()
    snap(page, "sam-04-passkey-removed")
    assert live.container.passkeys.list(uid) == []

    signed_out(page)  # the authenticator still holds the key, the server no longer knows it
    page.goto(f"{live.url}/login")
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.get_by_role("alert").wait_for()
    assert "not registered" in page.get_by_role("alert").inner_text()
    assert not [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
