"""End to end with a real DPoP client, unchanged: npm's oauth4webapi as a mobile app (public client) doing
code + PKCE + DPoP (RFC 9449), userinfo, refresh, and calls to a Starlette API protected by ``idp.resource``.

The IdP and the API run under uvicorn on loopback ports; the person signs in on the hosted pages (httpx as
the browser); the app is ``tests/node/dpop_app.mjs`` on oauth4webapi (pinned in ``tests/node/package.json``,
installed by this test into the git-ignored ``tests/node/node_modules``). Without node and npm the test skips, or fails
with ``CI`` set.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from idp.app import create_app
from idp.clock import FrozenClock
from idp.resource import BearerAuthMiddleware, HmacNonces, ResourceProtector, principal_of, requires_scope
from idp.services import Services
from tests.conftest import _unavailable
from tests.dpop_client import DPoPAuth, DPoPKey
from tests.integration.live_server import LiveServer, free_port
from tests.oauthkit import PASSWORD, make_user, native_client, query, service_client
from tests.pagekit import field

pytestmark = [pytest.mark.timing, pytest.mark.timeout(120)]  # live servers, a node process

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
API = "https://api.test"  # the API's identifier (the tokens' aud); it listens on a loopback port
REDIRECT = "http://127.0.0.1:53682/callback"  # RFC 8252 §7.3: the app's loopback listener (never reached here)


def node_clients() -> Path:
    """tests/node with its pinned packages installed (npm ci from the lock file); without node and npm the
    test skips, or fails with ``CI`` set."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        _unavailable("node and npm (for the oauth4webapi end-to-end test)")
    if not (NODE_DIR / "node_modules" / "oauth4webapi" / "package.json").exists():
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-2000:]
    return NODE_DIR


@pytest.fixture
def idp_port() -> int:
    return free_port()


@pytest.fixture(params=[False, True], ids=["no-nonces", "nonces"])
def nonces(request: pytest.FixtureRequest) -> bool:
    """Whether the IdP and the API demand server nonces (RFC 9449 §8, §9): the app then retries once each."""
    return bool(request.param)


@pytest.fixture
def settings_overrides(idp_port: int, nonces: bool) -> dict[str, object]:
    # The app checks the issuer against the URL it fetched discovery from.
    return {"issuer": f"http://127.0.0.1:{idp_port}", "dpop_nonces": nonces}


@requires_scope("api:read")
async def me(request: Request) -> JSONResponse:
    p = principal_of(request)
    assert p is not None
    return JSONResponse({"sub": p.sub, "client_id": p.client_id, "jkt": p.jkt})


async def serving(app: Any, port: int | None = None) -> LiveServer:
    return await LiveServer(app, port).astart()


class App:
    """The node app as a subprocess: one JSON line each way."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        if not line:
            err = await self.proc.stderr.read() if self.proc.stderr else b""
            raise AssertionError(f"the app ended: {err.decode()[-2000:]}")
        answer: dict[str, Any] = json.loads(line)
        assert "error" not in answer, answer
        return answer

    async def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()


async def start_app(issuer: str, client_id: str, api_url: str, alg: str = "ES256") -> App:
    env = os.environ | {
        "ISSUER": issuer, "CLIENT_ID": client_id, "REDIRECT_URI": REDIRECT, "API_URL": api_url, "DPOP_ALG": alg,
        "SCOPE": "openid profile offline_access api:read",
    }  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        "node", str(node_clients() / "dpop_app.mjs"), env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    return App(proc)


class Browser:
    """httpx as the person's browser; keeps the ``__Host-`` cookies itself (Secure: httpx sends none over http,
    a browser does on loopback)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.jar: dict[str, str] = {}

    async def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        headers = {**kw.pop("headers", {}), "cookie": "; ".join(f"{k}={v}" for k, v in self.jar.items())}
        r = await self.http.request(method, url, headers=headers, **kw)
        for header in r.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            self.jar[name.strip()] = rest.split(";", 1)[0]
        return r


async def browse_to_callback(issuer: str, authorize: str, username: str) -> str:
    """The person: sign in on the hosted page, continue to the app; returns the redirect the browser gets."""
    async with httpx.AsyncClient(base_url=issuer) as http:
        browser = Browser(http)
        r = await browser.request("GET", authorize)
        for _ in range(10):
            location = r.headers.get("location", "")
            if r.status_code not in (302, 303) or location.startswith(REDIRECT):
                break
            path = urlsplit(location).path
            page = await browser.request("GET", location)
            if path == "/login":
                data = {"csrf": field(page.text, "csrf"), "username": username, "password": PASSWORD,
                        "interaction": query(location)["interaction"]}  # fmt: skip
                r = await browser.request("POST", "/login", data=data, headers={"origin": issuer})
            elif path == "/consent":  # RFC 8252 §8.6: a loopback redirect is approved once per session
                data = {"interaction": query(location)["interaction"], "decision": "allow",
                        "csrf": field(page.text, "csrf")}  # fmt: skip
                r = await browser.request("POST", "/consent", data=data, headers={"origin": issuer})
            else:
                r = page
        assert r.status_code == 302 and r.headers["location"].startswith(REDIRECT), (r.status_code, r.text[:300])
        return str(r.headers["location"])


@pytest.fixture
async def servers(
    container: Services, idp_port: int, clock: FrozenClock, nonces: bool
) -> AsyncIterator[tuple[str, str]]:
    """(issuer, API URL): the IdP and an idp.resource-protected API, both live."""
    issuer = container.settings.issuer
    idp = await serving(create_app(services=container), idp_port)
    reader, secret = service_client(container, name="API", scope="deny-list:read", audience=API)
    api_nonces = HmacNonces(secrets.token_bytes(32), now=clock.now) if nonces else None
    protector = ResourceProtector(
        issuer=issuer, audience=API, client=(reader.client_id, secret), clock=clock, stale_after=30.0,
        dpop_nonces=api_nonces,
    )  # fmt: skip
    api_app = Starlette(routes=[Route("/me", me)], middleware=[Middleware(BearerAuthMiddleware, protector=protector)])
    api = await serving(api_app)
    try:
        yield issuer, f"{api.url}/me"
    finally:
        await api.astop()
        await idp.astop()


async def test_oauth4webapi_code_pkce_dpop_userinfo_refresh_and_api(
    container: Services, servers: tuple[str, str], nonces: bool
) -> None:
    issuer, api_url = servers
    user = make_user(container)
    app_client = native_client(container, scope="openid profile offline_access api:read", audience=API)
    app = await start_app(issuer, app_client.client_id, api_url)
    try:
        first = await app.read()
        assert "code_challenge_method=S256" in first["authorize"] and "dpop_jkt=" in first["authorize"]
        await app.send(await browse_to_callback(issuer, first["authorize"], user.username))
        done = await app.read()
    finally:
        if app.proc.returncode is None:
            app.proc.kill()
        await app.proc.wait()

    jkt = first["jkt"]
    tokens, refreshed = done["tokens"], done["refreshed"]
    assert tokens["token_type"].lower() == "dpop" and refreshed["token_type"].lower() == "dpop"  # RFC 9449 §5
    assert done["userinfo"]["sub"] == user.id == done["sub"]
    # The API saw the proof of the app's key, before and after the refresh.
    assert done["api"] == {"status": 200, "body": {"sub": user.id, "client_id": app_client.client_id, "jkt": jkt}}
    assert done["apiAfterRefresh"]["body"]["jkt"] == jkt
    assert refreshed["refresh_token"] != tokens["refresh_token"]  # still rotated for a public client
    # With nonces: asked once by the token endpoint (then userinfo and the refresh use it) and once by the API.
    assert done["nonceRetries"] == (2 if nonces else 0)

    stolen = refreshed["access_token"]
    async with httpx.AsyncClient() as thief:
        # RFC 9449 §7.2: copied off the phone, the token is useless as a bearer token ...
        r = await thief.get(api_url, headers={"authorization": f"Bearer {stolen}"})
        assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
        # ... and with a proof of another key (RFC 9449 §7.1) ...
        r = await thief.get(api_url, auth=DPoPAuth(DPoPKey("ES256"), stolen))
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("DPoP ")
        # ... and so is the refresh token without the key (RFC 9449 §5: bound for a public client).
        r = await thief.post(
            f"{issuer}/token",
            data={"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"],
                  "client_id": app_client.client_id},
        )  # fmt: skip
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
