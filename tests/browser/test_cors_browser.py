"""A public browser client in Chromium: fetch() from a page on one loopback origin to idp on another.

What oidc-client-ts does, step by step: discovery, JWKS, the code exchange, userinfo (a real
preflight: it sends Authorization), a refresh, revocation. The server records every request, so
the preflights are seen arriving, not assumed. A page on an unregistered origin can read the
public documents and nothing else, and its attempt does not spend the code.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from idp.app import create_app
from idp.config import Settings
from idp.interaction import SESSION_COOKIE
from idp.services import Services, build_services
from tests.browser.pages import page_server
from tests.integration.live_server import LiveServer, free_port

pytestmark = pytest.mark.browser

FLOW = """async ({clientId, code, verifier, redirectUri, issuer}) => {
  const form = (o) => new URLSearchParams(o);
  const out = {};
  const meta = await (await fetch(issuer + "/.well-known/openid-configuration")).json();
  out.issuer = meta.issuer;
  out.keys = (await (await fetch(meta.jwks_uri)).json()).keys.length;
  let r = await fetch(meta.token_endpoint, {method: "POST", body: form({grant_type: "authorization_code", code,
    redirect_uri: redirectUri, client_id: clientId, code_verifier: verifier})});
  const tokens = await r.json();
  out.token = r.status;
  r = await fetch(meta.userinfo_endpoint, {headers: {Authorization: "Bearer " + tokens.access_token}});
  out.userinfo = await r.json();
  r = await fetch(meta.token_endpoint, {method: "POST", headers: {Authorization: "Basic " + btoa(clientId + ":")},
    body: form({grant_type: "refresh_token", refresh_token: tokens.refresh_token})});
  out.wrongMethod = {status: r.status, body: await r.json()};
  r = await fetch(meta.token_endpoint, {method: "POST", body: form({grant_type: "refresh_token",
    refresh_token: tokens.refresh_token, client_id: clientId})});
  const refreshed = await r.json();
  out.refresh = r.status;
  r = await fetch(meta.revocation_endpoint, {method: "POST", body: form({token: refreshed.refresh_token,
    client_id: clientId})});
  out.revoke = r.status;
  return out;
}"""

STRANGER = """async ({clientId, code, verifier, redirectUri, issuer}) => {
  const out = {};
  out.discovery = (await (await fetch(issuer + "/.well-known/openid-configuration")).json()).issuer;
  out.jwks = (await (await fetch(issuer + "/jwks.json")).json()).keys.length;
  try {
    await fetch(issuer + "/token", {method: "POST", body: new URLSearchParams({grant_type: "authorization_code",
      code, redirect_uri: redirectUri, client_id: clientId, code_verifier: verifier})});
    out.token = "readable";
  } catch (e) { out.token = "blocked"; }
  try {
    await fetch(issuer + "/userinfo", {headers: {Authorization: "Bearer x"}});
    out.userinfo = "readable";
  } catch (e) { out.userinfo = "blocked"; }
  return out;
}"""


class Recorder:
    """Pure ASGI: remembers (method, path, Origin) of every request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[tuple[str, str, str | None]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            origin = next((v.decode() for k, v in scope["headers"] if k == b"origin"), None)
            self.seen.append((scope["method"], scope["path"], origin))
        await self.app(scope, receive, send)


@dataclass
class Site:
    url: str
    container: Services
    client_id: str
    spa: str
    stranger: str
    recorder: Recorder


@pytest.fixture(scope="module")
def site(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("cors")
    shutil.copy(sqlite_template, tmp / "idp.sqlite3")
    (spa_server, spa), (other_server, stranger) = page_server("SPA", "single-page app"), page_server("other", "x")
    port = free_port()
    settings = Settings(
        issuer=f"http://127.0.0.1:{port}", database_url=f"sqlite:///{tmp / 'idp.sqlite3'}",
        kek=base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode(), kek_file=tmp / "kek",
        data_dir=tmp, demo=False,
    )  # type: ignore[call-arg]  # fmt: skip
    c = build_services(settings)
    # A loopback page is no origin of the client's by itself (any local program could serve it): added here.
    client, _ = c.clients.create(
        name="SPA", kind="native", redirect_uris=[f"{spa}/callback"], scope="openid profile offline_access",
        first_party=True, allowed_cors_origins=[spa],
    )  # fmt: skip
    recorder = Recorder(create_app(services=c))
    server = LiveServer(recorder, port).start()
    try:
        yield Site(server.url, c, client.client_id, spa, stranger, recorder)
    finally:
        server.stop()
        c.close()
        for s in (spa_server, other_server):
            s.shutdown()
            s.server_close()


def _code(site: Site) -> dict[str, str]:
    """A code for the SPA, through /authorize with a signed-in session (the browser part is tested elsewhere)."""
    user = site.container.directory.store.by_username("ann") or site.container.directory.create(
        "ann", "correct horse battery staple", name="Ann"
    )
    cookie, session = site.container.login_sessions.login(user.id)
    # RFC 8252 §8.6: a loopback redirect of a public client was continued once in this session
    site.container.approvals.approve(session.sid, site.client_id, f"{site.spa}/callback")
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "response_type": "code", "client_id": site.client_id, "redirect_uri": f"{site.spa}/callback",
        "scope": "openid profile offline_access", "state": "s", "code_challenge": challenge,
        "code_challenge_method": "S256",
    }  # fmt: skip
    r = httpx.get(f"{site.url}/authorize?{urlencode(params)}", headers={"cookie": f"{SESSION_COOKIE}={cookie}"})
    assert r.status_code == 302, r.text
    code = parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
    return {"clientId": site.client_id, "code": code, "verifier": verifier, "redirectUri": f"{site.spa}/callback",
            "issuer": site.url}  # fmt: skip


@pytest.fixture
def page_at(browser):  # type: ignore[no-untyped-def]
    contexts = []

    def open_at(url: str):  # type: ignore[no-untyped-def]
        ctx = browser.new_context(java_script_enabled=True)
        ctx.set_default_timeout(10_000)
        contexts.append(ctx)
        page = ctx.new_page()
        page.goto(url)
        return page

    yield open_at
    for ctx in contexts:
        ctx.close()


def test_a_spa_completes_every_step_cross_origin(site: Site, page_at) -> None:  # type: ignore[no-untyped-def]
    args = _code(site)
    site.recorder.seen.clear()
    out = page_at(f"{site.spa}/").evaluate(FLOW, args)
    assert out["issuer"] == site.url and out["keys"] >= 2
    assert out["token"] == 200 and out["userinfo"]["preferred_username"] == "ann"
    assert out["wrongMethod"]["status"] == 401  # readable, and it says what to do
    assert out["wrongMethod"]["body"]["error_description"].startswith("this client authenticates with none")
    assert out["refresh"] == 200 and out["revoke"] == 200
    preflights = {path for method, path, origin in site.recorder.seen if method == "OPTIONS" and origin == site.spa}
    assert {"/userinfo", "/token"} <= preflights  # Authorization is not a safelisted header: real preflights


def test_an_unregistered_origin_reads_only_the_public_documents(site: Site, page_at) -> None:  # type: ignore[no-untyped-def]
    args = _code(site)
    out = page_at(f"{site.stranger}/").evaluate(STRANGER, args)
    assert out == {"discovery": site.url, "jwks": out["jwks"], "token": "blocked", "userinfo": "blocked"}
    assert out["jwks"] >= 2
    result = page_at(f"{site.spa}/").evaluate(FLOW, args)  # the stranger's attempt did not spend the code
    assert result["token"] == 200
