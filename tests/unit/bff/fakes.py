"""In-memory stand-ins for the BFF's session store and idp's token endpoint, for unit tests.

``MemorySessionStore`` honours the sessions' half of the SessionStore contract (the proxy and refresh use
no login records): compare-and-set on ``version``, an exclusive lease that lapses after its TTL on the
injected clock. ``FakeTokenEndpoint`` is an httpx MockTransport
handler that checks client_secret_basic and the form, rotates refresh tokens, and fails the test's way
when told to; ``gate`` holds its answers until the test opens it.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, unquote

import httpx
from starlette.requests import Request

from idp.bff.session import BffSession, SessionStore, TokenSet
from idp.bff.token_endpoint import TokenEndpoint
from idp.clock import FrozenClock

TOKEN_URL = "https://idp.test/token"
CLIENT_ID = "bff client"  # a space: client_secret_basic must form-encode it
CLIENT_SECRET = "s3cret:with/odd+chars"


class MemorySessionStore:
    def __init__(self, clock: FrozenClock) -> None:
        self.clock = clock
        self.rows: dict[str, BffSession] = {}
        self.leases: dict[str, tuple[str, float]] = {}
        self.gets = 0
        self.lease_calls = 0

    async def create(self, session: BffSession) -> None:
        self.rows[session.key] = session

    async def get(self, key: str) -> BffSession | None:
        self.gets += 1
        s = self.rows.get(key)
        if s is None or s.expires_at <= self.clock.now():
            return None
        return s

    async def replace(self, session: BffSession, *, expected_version: int) -> bool:
        cur = self.rows.get(session.key)
        if cur is None or cur.version != expected_version:
            return False
        assert session.version == expected_version + 1
        self.rows[session.key] = session
        return True

    async def delete(self, key: str) -> None:
        self.rows.pop(key, None)

    async def delete_by_sid(self, sid: str) -> int:
        gone = [k for k, s in self.rows.items() if s.sid == sid]
        for k in gone:
            del self.rows[k]
        return len(gone)

    async def delete_by_sub(self, sub: str) -> int:
        gone = [k for k, s in self.rows.items() if s.sub == sub]
        for k in gone:
            del self.rows[k]
        return len(gone)

    async def lease(self, key: str, owner: str, ttl: float) -> bool:
        self.lease_calls += 1
        held = self.leases.get(key)
        if held is not None and held[1] > self.clock.now() and held[0] != owner:
            return False
        self.leases[key] = (owner, self.clock.now() + ttl)
        return True

    async def release(self, key: str, owner: str) -> None:
        if self.leases.get(key, ("", 0.0))[0] == owner:
            del self.leases[key]

    async def close(self) -> None:
        pass


def cookie_is_key(store: SessionStore, cookie: str = "__Host-bff") -> Callable[[Request], Awaitable[BffSession | None]]:
    """A session resolver for proxy tests: the cookie's value is the store key itself (the real one,
    ``Bff.session_of``, digests the cookie first)."""

    async def sessions(request: Request) -> BffSession | None:
        key = request.cookies.get(cookie)
        return None if key is None else await store.get(key)

    return sessions


def make_session(clock: FrozenClock, *, key: str = "k1", access_ttl: float = 300.0, version: int = 0) -> BffSession:
    now = clock.now()
    return BffSession(
        key=key,
        sub="alice",
        sid="sid-1",
        claims={"sub": "alice"},
        tokens=TokenSet(
            access_token="at-0",
            access_expires_at=now + access_ttl,
            refresh_token="rt-0",
            id_token="idt",
            scope="openid",
        ),
        created_at=now,
        expires_at=now + 3600,
        version=version,
    )


def expire(session: BffSession, clock: FrozenClock) -> BffSession:
    return dataclasses.replace(session, tokens=dataclasses.replace(session.tokens, access_expires_at=clock.now() - 1))


class FakeTokenEndpoint:
    """idp's token endpoint, as far as the BFF sees it. Refresh tokens rotate; a reused one answers
    invalid_grant (as idp does, revoking the family)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.live_refresh = {"rt-0"}
        self.generation = 0
        self.gate: asyncio.Event | None = None
        self.fail: Callable[[dict[str, str]], httpx.Response | None] | None = None
        self.exchange_expires_in = 120
        self.refresh_expires_in = 300

    def refreshes(self) -> list[dict[str, str]]:
        return [r for r in self.requests if r.get("grant_type") == "refresh_token"]

    def exchanges(self) -> list[dict[str, str]]:
        return [r for r in self.requests if r.get("grant_type", "").endswith("token-exchange")]

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST" and str(request.url) == TOKEN_URL
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        scheme, _, cred = request.headers["authorization"].partition(" ")
        assert scheme == "Basic"
        cid, _, secret = base64.b64decode(cred).decode().partition(":")
        assert (unquote(cid), unquote(secret)) == (CLIENT_ID, CLIENT_SECRET)
        assert ":" not in secret  # RFC 6749 §2.3.1: the secret's own ":" is encoded
        form = {k: v[0] for k, v in parse_qs(request.content.decode(), keep_blank_values=True).items()}
        self.requests.append(form)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None and (failed := self.fail(form)) is not None:
            return failed
        if form["grant_type"] == "refresh_token":
            if form["refresh_token"] not in self.live_refresh:
                self.live_refresh.clear()  # reuse: the family is revoked
                return error(400, "invalid_grant")
            self.live_refresh.discard(form["refresh_token"])
            self.generation += 1
            new = f"rt-{self.generation}"
            self.live_refresh.add(new)
            return json_response(
                {
                    "access_token": f"at-{self.generation}",
                    "token_type": "Bearer",
                    "expires_in": self.refresh_expires_in,
                    "refresh_token": new,
                    "scope": "openid",
                }
            )
        if form["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange":
            assert form["subject_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
            assert set(form) == {"grant_type", "subject_token", "subject_token_type", "audience"}
            return json_response(
                {
                    "access_token": f"x[{form['audience']}]<-{form['subject_token']}#{len(self.exchanges())}",
                    "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                    "token_type": "Bearer",
                    "expires_in": self.exchange_expires_in,
                    "scope": "orders",
                }
            )
        return error(400, "unsupported_grant_type")


def json_response(body: object, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body).encode(), headers={"content-type": "application/json"})


def error(status: int, code: str) -> httpx.Response:
    return json_response({"error": code}, status)


def token_endpoint(fake: FakeTokenEndpoint, *, timeout: float = 10.0) -> TokenEndpoint:
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    return TokenEndpoint(TOKEN_URL, CLIENT_ID, CLIENT_SECRET, http, timeout=timeout)


class YieldingSleep:
    """An injected ``sleep`` that records the delays asked for and only yields to the event loop."""

    def __init__(self, clock: FrozenClock | None = None, ticks: int = 5) -> None:
        self.delays: list[float] = []
        self.clock = clock
        self.ticks = ticks

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self.clock is not None:
            self.clock.advance(delay)
        for _ in range(self.ticks):
            await asyncio.sleep(0)
