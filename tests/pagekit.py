"""Helpers for the hosted-page tests: users, clients, form fields, signing in over the in-process client."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import httpx

from idp.clients.model import Client
from idp.interaction import SESSION_COOKIE, PendingAuthorization
from idp.services import Services
from idp.users.directory import User

ISSUER = "https://idp.test"
PASSWORD = "correct horse battery staple"
SAME_ORIGIN = {"origin": ISSUER}
HTML_SECURITY_HEADERS = {
    "content-security-policy": "frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
}


def make_user(c: Services, username: str = "alice", password: str = PASSWORD, **kw: Any) -> User:
    return c.directory.create(username, password, email=f"{username}@example.com", name=username.title(), **kw)


def make_client(c: Services, name: str = "Photo Book", **kw: Any) -> Client:
    kw.setdefault("kind", "web")
    kw.setdefault("redirect_uris", ["https://rp.example/cb"])
    kw.setdefault("post_logout_redirect_uris", ["https://rp.example/bye"])
    kw.setdefault("scope", "openid profile email offline_access")
    client, _secret = c.clients.create(name=name, **kw)
    return client


def pending(c: Services, client: Client, scopes: list[str] | None = None, **params: str) -> PendingAuthorization:
    scopes = scopes or ["openid", "profile"]
    base = {"response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uris[0]}
    return c.interactions.create(client.client_id, base | {"scope": " ".join(scopes)} | params, scopes, ip="127.0.0.1")


def field(html: str, name: str) -> str:
    """The value of the (first) input named ``name``."""
    m = re.search(rf'<input[^>]*name="{re.escape(name)}"[^>]*value="([^"]*)"', html)
    if m is None:
        raise AssertionError(f"no input named {name!r} in page")
    return unescape(m.group(1))


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """name -> full Set-Cookie header line."""
    return {line.split("=", 1)[0]: line for line in response.headers.get_list("set-cookie")}


def session_value(client: httpx.AsyncClient) -> str | None:
    return client.cookies.get(SESSION_COOKIE)


async def login_form(client: httpx.AsyncClient, **params: str) -> httpx.Response:
    r = await client.get("/login", params=params)
    assert r.status_code == 200, r.text
    return r


async def sign_in(
    client: httpx.AsyncClient,
    username: str = "alice",
    password: str = PASSWORD,
    *,
    interaction: str | None = None,
    next_path: str | None = None,
    headers: dict[str, str] | None = None,
    switch: bool = False,
) -> httpx.Response:
    params = {"interaction": interaction} if interaction else {}
    if switch:
        params["switch"] = "1"
    page = await login_form(client, **params)
    data = {"csrf": field(page.text, "csrf"), "username": username, "password": password}
    if interaction:
        data["interaction"] = interaction
    if next_path:
        data["next"] = next_path
    return await client.post("/login", data=data, headers=headers if headers is not None else SAME_ORIGIN)


async def account_csrf(client: httpx.AsyncClient) -> str:
    r = await client.get("/account")
    assert r.status_code == 200, r.status_code
    return field(r.text, "csrf")


class RecordingGrants:
    """Stands in for idp.tokens.refresh's GrantRevoker where a test only checks what was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def revoke_for_session(self, sid: str, *, keep_offline: bool, actor: str, reason: str) -> int:
        self.calls.append(("session", {"sid": sid, "keep_offline": keep_offline, "reason": reason}))
        return 0

    def revoke_for_user(self, user_id: str, *, actor: str, reason: str, client_id: str | None = None) -> int:
        self.calls.append(("user", {"user_id": user_id, "client_id": client_id, "reason": reason}))
        return 0


def deny_entries(c: Services, kind: str) -> list[str]:
    return [e.value for e in c.denylist.list() if e.kind == kind] if c.denylist is not None else []
