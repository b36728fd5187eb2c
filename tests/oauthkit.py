"""Helpers for the OAuth/OIDC flow tests: clients, PKCE pairs, a signed-in browser, code exchange."""

from __future__ import annotations

import base64
import hashlib
import math
import secrets
import warnings
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import authlib.deprecate  # noqa: E402,F401  (importing it installs an "always" filter; ours must come after)
import httpx
import pytest

from idp.clients.model import Client
from idp.config import Settings
from idp.denylist.entries import NewEntry
from idp.interaction import SESSION_COOKIE
from idp.services import Services
from idp.sessions.consents import needs_session_approval
from idp.users.directory import User
from tests.pagekit import field

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # Authlib notes it falls back to httpx (no httpx2 here)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

__all__ = ["AsyncOAuth2Client"]

ISSUER = "https://idp.test"
PASSWORD = "correct horse battery staple"
WEB_REDIRECT = "https://rp.example/cb"
NATIVE_REDIRECT = "http://127.0.0.1/callback"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def make_user(c: Services, username: str = "alice", **kw: Any) -> User:
    return c.directory.create(username, PASSWORD, email=f"{username}@example.com", name=username.title(), **kw)


def web_client(c: Services, **kw: Any) -> tuple[Client, str]:
    kw.setdefault("name", "Web App")
    kw.setdefault("kind", "web")
    kw.setdefault("redirect_uris", [WEB_REDIRECT])
    kw.setdefault("scope", "openid profile email offline_access")
    kw.setdefault("first_party", True)
    client, secret = c.clients.create(**kw)
    return client, secret or ""


def native_client(c: Services, **kw: Any) -> Client:
    kw.setdefault("name", "Mobile App")
    kw.setdefault("kind", "native")
    kw.setdefault("redirect_uris", [NATIVE_REDIRECT])
    kw.setdefault("scope", "openid profile offline_access")
    kw.setdefault("first_party", True)
    client, _ = c.clients.create(**kw)
    return client


def service_client(c: Services, **kw: Any) -> tuple[Client, str]:
    kw.setdefault("name", "Integrator")
    kw.setdefault("kind", "service")
    kw.setdefault("scope", "api:read api:write")
    client, secret = c.clients.create(**kw)
    return client, secret or ""


def sign_in_fast(c: Services, http: httpx.AsyncClient, user: User) -> str:
    """A real login session for ``user`` (no password form), its cookie set on the browser. Returns the sid."""
    cookie, session = c.login_sessions.login(user.id)
    http.cookies.set(SESSION_COOKIE, cookie, domain="idp.test")
    return session.sid


def query(location: str) -> dict[str, str]:
    parts = urlsplit(location)
    return {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}


def auth_params(client: Client, challenge: str | None, **extra: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uris[0],
        "scope": "openid profile",
        "state": "st-" + secrets.token_hex(4),
    }
    if challenge is not None:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    params.update(extra)
    return {k: v for k, v in params.items() if v != ""}


async def continue_on_page(http: httpx.AsyncClient, location: str, decision: str = "allow") -> httpx.Response:
    """The person answers the consent (or continue) page at ``location``; returns the resumed /authorize answer."""
    page = await http.get(location)
    assert page.status_code == 200, (page.status_code, page.text[:300])
    data = {"interaction": query(location)["interaction"], "decision": decision, "csrf": field(page.text, "csrf")}
    r = await http.post("/consent", data=data, headers={"origin": ISSUER})
    assert r.status_code == 303, (r.status_code, r.text[:300])
    return await http.get(r.headers["location"])


async def get_code(http: httpx.AsyncClient, client: Client, **extra: str) -> tuple[str, str, dict[str, str]]:
    """Authorize with an already signed-in browser; returns (code, verifier, redirect query).

    A public client's loopback or private-use redirect is approved once per session (RFC 8252 §8.6): when
    the browser is sent to that continue page, the person continues.
    """
    verifier, challenge = pkce_pair()
    params = auth_params(client, challenge, **extra)
    r = await http.get("/authorize", params=params)
    if needs_session_approval(client, params["redirect_uri"]) and r.headers.get("location", "").startswith(
        f"{ISSUER}/consent?"
    ):
        r = await continue_on_page(http, r.headers["location"])
    assert r.status_code == 302, (r.status_code, r.text[:300])
    q = query(r.headers["location"])
    assert "code" in q, q
    return q["code"], verifier, q


FORM = {"content-type": "application/x-www-form-urlencoded"}


async def post_pairs(
    http: httpx.AsyncClient, url: str, pairs: list[tuple[str, str]], headers: dict[str, str] | None = None
) -> httpx.Response:
    """POST a form that may repeat parameters (httpx's ``data=`` cannot)."""
    return await http.post(url, content=urlencode(pairs), headers={**FORM, **(headers or {})})


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"authorization": f"Basic {raw}"}


async def exchange(
    http: httpx.AsyncClient, client: Client, secret: str | None, code: str, verifier: str | None, **extra: str
) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uris[0]}
    if verifier is not None:
        data["code_verifier"] = verifier
    headers = {}
    if secret:
        headers = basic(client.client_id, secret)
    else:
        data["client_id"] = client.client_id
    data.update(extra)
    return await http.post("/token", data=data, headers=headers)


async def refresh(
    http: httpx.AsyncClient, client: Client, secret: str | None, token: str, **extra: str
) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": token, **extra}
    headers = basic(client.client_id, secret) if secret else {}
    if not secret:
        data["client_id"] = client.client_id
    return await http.post("/token", data=data, headers=headers)


async def tokens_for(
    c: Services, http: httpx.AsyncClient, client: Client, secret: str | None, user: User, **extra: str
) -> dict[str, Any]:
    """Sign in, authorize and exchange: the token response."""
    sign_in_fast(c, http, user)
    code, verifier, _ = await get_code(http, client, **extra)
    r = await exchange(http, client, secret, code, verifier)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


class RecordingDenyList:
    """Stands in for the deny-list where a test checks which access tokens a revocation denied."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float | None, str]] = []
        self.batches: list[int] = []  # sizes of deny_many calls

    def deny(self, kind: str, value: str, *, reason: str, actor: str, until: float | None = None) -> None:
        self.calls.append((kind, value, until, reason))

    def deny_many(self, items: list[tuple[str, str, float | None]], *, reason: str, actor: str) -> None:
        self.batches.append(len(items))
        for kind, value, until in items:
            self.deny(kind, value, reason=reason, actor=actor, until=until)

    def prepare(self, items: list[tuple[str, str, float | None]]) -> list[NewEntry]:
        """Entries for a revoking transaction to write (``until`` kept as their expiry)..."""
        return [NewEntry(kind, value, None, until if until is not None else 0.0) for kind, value, until in items]

    def committed(self, entries: list[Any]) -> None:
        """...recorded once it committed, as one batch."""
        self.batches.append(len(entries))
        for e in entries:
            self.deny(e.kind, e.value, reason=e.reason, actor=e.actor, until=e.expires_at)

    def is_denied(self, claims: dict[str, Any], kid: str | None = None) -> bool:
        return any(k == "jti" and v == claims.get("jti") for k, v, _, _ in self.calls)

    def latest_cutoff(self, claims: dict[str, Any]) -> float:
        return -math.inf  # records cut-offs without their time: none to stamp a new token past


def stand_in(monkeypatch: pytest.MonkeyPatch, target: object, recorder: object) -> None:
    """Send the calls of ``target``'s methods that ``recorder`` also defines to the recorder: the services are
    wired to each other once, so a test replaces behaviour on the object they hold, not the object."""
    for name in dir(recorder):
        if not name.startswith("_") and callable(getattr(recorder, name)) and hasattr(target, name):
            monkeypatch.setattr(target, name, getattr(recorder, name))


def cli_environment(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """The IDP_* variables that make a CLI command in this process open the test's database, store and KEK."""
    for name in ("database_url", "redis_url", "redis_prefix", "kek", "issuer"):
        monkeypatch.setenv(f"IDP_{name.upper()}", str(getattr(settings, name)))
