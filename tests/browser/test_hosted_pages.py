"""Real-browser journeys through the hosted pages (JavaScript off), with screenshots."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from idp.interaction import SESSION_COOKIE
from tests.browser.conftest import PASSWORD

pytestmark = pytest.mark.browser
NEW_PASSWORD = "a much longer passphrase"


def user(live, name: str) -> str:
    return live.container.directory.create(name, PASSWORD, email=f"{name}@example.com", name=name.title()).id


def authorize_url(live, **extra: str) -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "response_type": "code", "client_id": live.client_id, "redirect_uri": f"{live.rp}/callback",
        "scope": "openid profile email offline_access", "state": "st-" + secrets.token_hex(4),
        "code_challenge": challenge, "code_challenge_method": "S256",
    } | extra  # fmt: skip
    return f"{live.url}/authorize?{urlencode(params)}", verifier


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def fill_login(page, username: str, password: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def sign_in_through_authorize(live, page, name: str, shot=None) -> tuple[dict[str, str], str]:
    """Authorize -> login -> consent -> the client's callback. Returns (callback query, PKCE verifier)."""
    url, verifier = authorize_url(live)
    page.goto(url)
    assert page.url.startswith(f"{live.url}/login?interaction=")
    if shot:
        shot(page, "01-login")
    fill_login(page, name, PASSWORD)
    assert page.url.startswith(f"{live.url}/consent?interaction=")
    if shot:
        shot(page, "02-consent")
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(f"{live.rp}/callback?**")
    return query(page.url), verifier


def exchange(live, code: str, verifier: str) -> dict:
    r = httpx.post(
        f"{live.url}/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": f"{live.rp}/callback",
              "code_verifier": verifier},
        auth=(live.client_id, live.client_secret),
    )  # fmt: skip
    assert r.status_code == 200, r.text
    return r.json()


def refresh_status(live, token: str) -> int:
    r = httpx.post(
        f"{live.url}/token", data={"grant_type": "refresh_token", "refresh_token": token},
        auth=(live.client_id, live.client_secret),
    )  # fmt: skip
    return r.status_code


def test_login_consent_redirect_with_code(live, new_context, shot):
    user(live, "alice")
    page = new_context().new_page()
    q, verifier = sign_in_through_authorize(live, page, "alice", shot)
    assert set(q) >= {"code", "state", "iss"} and q["iss"] == live.url
    tokens = exchange(live, q["code"], verifier)
    assert {"access_token", "id_token", "refresh_token"} <= tokens.keys()
    [cookie] = [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert cookie["domain"] == "127.0.0.1"  # host-only: no Domain attribute


def test_phone_width_pages(live, new_context, shot):
    user(live, "phoebe")
    page = new_context(phone=True).new_page()
    url, _ = authorize_url(live)
    page.goto(url)
    shot(page, "01-login-phone")
    fill_login(page, "phoebe", PASSWORD)
    shot(page, "02-consent-phone")
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(f"{live.rp}/callback?**")
    page.goto(f"{live.url}/account")
    shot(page, "04-account-phone")
    box = page.locator(".card").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390  # nothing overflows the screen


def test_wrong_password_and_unknown_user_read_the_same(live, new_context, shot):
    user(live, "bob")
    page = new_context().new_page()
    page.goto(f"{live.url}/login")
    fill_login(page, "bob", "not my password")
    wrong = page.get_by_role("alert").inner_text()
    shot(page, "05-login-wrong-password")
    fill_login(page, "nobody-here", "not my password")
    unknown = page.get_by_role("alert").inner_text()
    assert wrong == unknown == "Incorrect username or password."
    assert not [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]


def test_throttling_after_repeated_failures(live, new_context, shot):
    user(live, "carol")
    page = new_context().new_page()
    page.goto(f"{live.url}/login")
    statuses = []
    page.on("response", lambda r: statuses.append(r.status) if r.request.method == "POST" else None)
    for _ in range(5):
        fill_login(page, "carol", "guess guess guess")
    assert statuses == [400, 400, 400, 400, 429]
    assert "Too many attempts" in page.get_by_role("alert").inner_text()
    fill_login(page, "carol", PASSWORD)  # even the right password waits
    assert statuses[-1] == 429
    shot(page, "06-login-throttled")


def test_rp_initiated_logout(live, new_context, shot):
    user(live, "dave")
    page = new_context().new_page()
    q, verifier = sign_in_through_authorize(live, page, "dave")
    tokens = exchange(live, q["code"], verifier)
    # without an id_token_hint the person confirms first
    page.goto(f"{live.url}/logout?client_id={live.client_id}")
    assert page.get_by_role("heading", name="Sign out?").is_visible()
    shot(page, "07-logout-confirm")
    params = urlencode(
        {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": f"{live.rp}/bye", "state": "bye-1"}
    )
    page.goto(f"{live.url}/logout?{params}")
    page.wait_for_url(f"{live.rp}/bye?state=bye-1")
    assert not [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
    page.goto(f"{live.url}/account")
    assert page.url.startswith(f"{live.url}/login")


def test_confirmed_logout_and_logged_out_page(live, new_context, shot):
    user(live, "erin")
    page = new_context().new_page()
    page.goto(f"{live.url}/login")
    fill_login(page, "erin", PASSWORD)
    page.goto(f"{live.url}/logout")
    page.get_by_role("button", name="Sign out").click()
    assert page.url == f"{live.url}/logout/done"
    assert page.get_by_role("heading", name="You're signed out").is_visible()
    shot(page, "08-logged-out")


def test_account_sign_out_everywhere_kills_a_clients_refresh_token(live, new_context, shot):
    uid = user(live, "frank")
    laptop = new_context().new_page()
    q, verifier = sign_in_through_authorize(live, laptop, "frank")
    tokens = exchange(live, q["code"], verifier)
    assert live.container.grants.lookup(tokens["refresh_token"]) is not None  # live before
    phone = new_context(phone=True).new_page()
    phone.goto(f"{live.url}/login")
    fill_login(phone, "frank", PASSWORD)
    laptop.goto(f"{live.url}/account")
    assert laptop.get_by_text("This device", exact=True).count() == 1
    assert laptop.get_by_role("button", name=re.compile(r"^Sign out Chrome on Linux")).count() == 2  # two devices
    assert laptop.get_by_text("Photo Book").count() >= 1
    shot(laptop, "03-account")
    laptop.get_by_role("button", name="Sign out everywhere").click()
    assert laptop.url == f"{live.url}/logout/done?everywhere=1"
    shot(laptop, "09-signed-out-everywhere")
    assert refresh_status(live, tokens["refresh_token"]) == 400
    assert live.container.login_sessions.list_for_user(uid) == []
    phone.goto(f"{live.url}/account")
    assert phone.url.startswith(f"{live.url}/login")


def test_change_password(live, new_context, shot):
    user(live, "grace")
    page = new_context().new_page()
    page.goto(f"{live.url}/login")
    fill_login(page, "grace", PASSWORD)
    before = next(c["value"] for c in page.context.cookies() if c["name"] == SESSION_COOKIE)
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Confirm new password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    assert page.url == f"{live.url}/account?done=password"
    assert "Password changed" in page.get_by_role("status").inner_text()
    shot(page, "10-password-changed")
    after = next(c["value"] for c in page.context.cookies() if c["name"] == SESSION_COOKIE)
    assert after != before
    other = new_context().new_page()
    other.goto(f"{live.url}/login")
    fill_login(other, "grace", PASSWORD)
    assert other.get_by_role("alert").inner_text() == "Incorrect username or password."
    fill_login(other, "grace", NEW_PASSWORD)
    assert other.url == f"{live.url}/account"


def test_error_pages(live, new_context, shot):
    page = new_context().new_page()
    response = page.goto(f"{live.url}/authorize?client_id=unknown&redirect_uri=https://evil.example/cb")
    assert response.status == 400 and page.url.startswith(live.url)
    shot(page, "11-error-unknown-client")
    response = page.goto(f"{live.url}/login?interaction=expired-or-made-up")
    assert response.status == 400
    assert "interaction_expired" in page.content()
    shot(page, "12-error-expired")


def test_native_app_private_use_scheme_receives_the_code(live, new_context):
    """form-action governs the redirects after the sign-in POST: the private-use scheme must not be blocked."""
    native, _ = live.container.clients.create(
        name="Photo Book for iOS", kind="native", redirect_uris=["com.example.photobook:/callback"],
        scope="openid offline_access", first_party=True,
    )  # fmt: skip
    user(live, "heidi")
    page = new_context().new_page()
    requested, console = [], []
    page.on("request", lambda r: requested.append(r.url))
    page.on("console", lambda m: console.append(m.text))
    url, _ = authorize_url(
        live, client_id=native.client_id, redirect_uri="com.example.photobook:/callback", scope="openid"
    )
    page.goto(url)
    fill_login(page, "heidi", PASSWORD)
    # RFC 8252 §8.6: any app could claim the scheme; the person continues once per session (and the consent
    # page's form-action must allow the scheme too).
    assert "com.example.photobook:/callback" in page.content()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_timeout(300)
    assert any(u.startswith("com.example.photobook:/callback?code=") for u in requested), requested
    assert not [m for m in console if "Content Security Policy" in m]
