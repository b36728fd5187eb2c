"""End to end, mobile app: a public client with PKCE S256 and a loopback redirect (RFC 8252 §7.3),
Authlib's OAuth2 client as the app, the real hosted login page, a real loopback listener."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.common.security import generate_token

from idp.services import Services
from tests.oauthkit import ISSUER, PASSWORD, AsyncOAuth2Client, continue_on_page, make_user, native_client, query
from tests.pagekit import field


class Loopback:
    """What a native app does: listen on 127.0.0.1, an ephemeral port, for one redirect."""

    def __init__(self) -> None:
        self.received: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def __aenter__(self) -> Loopback:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line = (await reader.readline()).decode()
        while (await reader.readline()).strip():
            pass
        if not self.received.done():
            self.received.set_result(f"http://127.0.0.1:{self.port}{request_line.split()[1]}")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 18\r\nconnection: close\r\n\r\nYou can close this")
        await writer.drain()
        writer.close()


async def browse(browser: httpx.AsyncClient, url: str, *, until: str) -> httpx.Response:
    """Follow redirects like a browser until the URL starts with ``until``; returns that response."""
    r = await browser.get(url)
    for _ in range(10):
        if r.status_code not in (302, 303) or r.headers["location"].startswith(until):
            return r
        r = await browser.get(r.headers["location"])
    raise AssertionError("redirect loop")


async def sign_in_on_page(browser: httpx.AsyncClient, login_url: str, username: str) -> httpx.Response:
    page = await browser.get(login_url)
    assert page.status_code == 200 and "<form" in page.text
    interaction = query(login_url)["interaction"]
    data = {"csrf": field(page.text, "csrf"), "username": username, "password": PASSWORD, "interaction": interaction}
    r = await browser.post("/login", data=data, headers={"origin": ISSUER})
    assert r.status_code == 303, r.text  # RFC 9700 §4.12
    return r


async def test_native_app_pkce_loopback(app: Any, container: Services) -> None:
    user = make_user(container)
    native = native_client(container)  # registered as http://127.0.0.1/callback: any port at runtime
    transport = httpx.ASGITransport(app=app)
    async with (
        Loopback() as loopback,
        httpx.AsyncClient(
            mounts={"https://idp.test": transport, "http://127.0.0.1": httpx.AsyncHTTPTransport()},
            base_url=ISSUER,
        ) as browser,
        AsyncOAuth2Client(
            client_id=native.client_id,
            token_endpoint_auth_method="none",
            redirect_uri=f"http://127.0.0.1:{loopback.port}/callback",
            scope="openid profile offline_access",
            code_challenge_method="S256",
            transport=transport,
        ) as app_client,
    ):
        verifier = generate_token(64)
        url, state = app_client.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier)
        assert "code_challenge=" in url and "code_challenge_method=S256" in url
        r = await browse(browser, url, until=f"{ISSUER}/login")
        r = await sign_in_on_page(browser, r.headers["location"], user.username)
        r = await browse(browser, f"{ISSUER}{r.headers['location']}", until=f"{ISSUER}/consent")
        # RFC 8252 §8.6: any local program could have started this flow; the person continues to this port.
        r = await continue_on_page(browser, r.headers["location"])
        callback = r.headers["location"]
        assert urlsplit(callback).port == loopback.port
        await browser.get(callback)  # the browser lands on the app's loopback listener
        received = await asyncio.wait_for(loopback.received, 5)
        q = query(received)
        assert q["state"] == state and q["iss"] == ISSUER  # RFC 9207: the app checks the issuer
        token = await app_client.fetch_token(
            f"{ISSUER}/token", authorization_response=received, code_verifier=verifier, state=state
        )
        assert {"access_token", "refresh_token", "id_token"} <= set(token)
        me = (await app_client.get(f"{ISSUER}/userinfo")).json()
        assert me["sub"] == user.id and me["preferred_username"] == user.username
        old_refresh = token["refresh_token"]
        new = await app_client.refresh_token(f"{ISSUER}/token")
        assert new["refresh_token"] != old_refresh  # rotated (RFC 9700 §4.14.2 for public clients)
        container.clock.advance(container.settings.refresh_grace_seconds + 1)
        r = await app_client.request(
            "POST",
            f"{ISSUER}/token",
            data={"grant_type": "refresh_token", "refresh_token": old_refresh, "client_id": native.client_id},
            withhold_token=True,
        )
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
