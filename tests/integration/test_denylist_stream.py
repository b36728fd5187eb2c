"""GET /deny-list/events: signed SETs with id = version, heartbeats, Last-Event-ID replay, resync, bounded
buffers, and streams that end when the server shuts down."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import orjson
import pytest

from idp.container import Container
from idp.crypto import b64url_decode
from idp.tokens import jwt
from idp.tokens.denyset import DenyChange, DenyEntry
from idp.tokens.secevent import EVENT_DENY, SET_TYP
from idp.web.denylist_feed import DenyFeed, _Stream
from tests.integration.live_server import LiveServer, free_port
from tests.integration.resource_support import ISSUER, idp_server, running_idp

pytestmark = [pytest.mark.timing, pytest.mark.timeout(60)]  # live IdP, real streams


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"denylist_heartbeat_seconds": 0.2}


@pytest.fixture
async def idp(container: Container) -> AsyncIterator[LiveServer]:
    async with running_idp(container) as server:
        yield server


class Events:
    """Reads an SSE response into (fields) events and comments."""

    def __init__(self, resp: httpx.Response) -> None:
        self.lines = resp.aiter_lines()
        self.comments: list[str] = []

    async def next(self, timeout: float = 2.0) -> dict[str, str]:
        event: dict[str, str] = {}
        while True:
            line = await asyncio.wait_for(self.lines.__anext__(), timeout)
            if line == "":
                if "data" in event:
                    return event
                event = {}  # e.g. the opening "retry:" block
                continue
            if line.startswith(":"):
                self.comments.append(line)
                continue
            name, _, value = line.partition(":")
            event[name] = value.removeprefix(" ")


@asynccontextmanager
async def open_stream(url: str, headers: dict[str, str]) -> AsyncIterator[httpx.Response]:
    async with httpx.AsyncClient(base_url=url) as http, http.stream("GET", "/deny-list/events", headers=headers) as r:
        yield r


def verify_set(c: Container, token: str) -> dict[str, object]:
    header = jwt.peek_header(token)
    assert header["typ"] == SET_TYP  # RFC 8417 §2.3
    _, claims = jwt.verify(
        c.keyring, token, typ=SET_TYP, issuer=ISSUER, audience=None, now=c.clock.now(),
        require=("iss", "iat", "jti", "events"), allow_expired=True,
    )  # fmt: skip
    assert "exp" not in claims
    return claims


async def test_events_are_signed_sets_with_the_version_as_id(idp: LiveServer, container: Container) -> None:
    async with open_stream(idp.url, {"last-event-id": "0"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        events = Events(r)
        entry = await asyncio.to_thread(
            container.denylist.deny, "subject", "u1", reason="stolen phone", actor="admin:x"
        )
        ev = await events.next()
        assert ev["id"] == str(entry.id) and ev["event"] == "deny"
        claims = verify_set(container, ev["data"])
        assert claims["events"] == {EVENT_DENY: {"version": entry.id, "op": "add", "entry": entry.public()}}
        assert "stolen phone" not in ev["data"] and "admin:x" not in str(b64url_decode(ev["data"].split(".")[1]))
        await asyncio.to_thread(container.denylist.remove, entry.id, actor="t")
        ev = await events.next()
        assert ev["id"] == str(entry.id + 1)
        assert verify_set(container, ev["data"])["events"] == {
            EVENT_DENY: {"version": entry.id + 1, "op": "remove", "id": entry.id}
        }


async def test_heartbeats_keep_an_idle_stream_talking(idp: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=idp.url) as http, http.stream("GET", "/deny-list/events") as r:
        lines = r.aiter_lines()
        started = time.monotonic()
        seen = []
        while len([x for x in seen if x == ": keepalive"]) < 3:
            seen.append(await asyncio.wait_for(lines.__anext__(), 2.0))
        assert time.monotonic() - started < 1.5  # every 0.2 s here (IDP_DENYLIST_HEARTBEAT_SECONDS)
        assert seen[0].startswith("retry:")


async def test_last_event_id_replays_what_was_missed(idp: LiveServer, container: Container) -> None:
    made = [await asyncio.to_thread(container.denylist.deny, "jti", f"j{i}", reason="", actor="t") for i in range(4)]
    async with httpx.AsyncClient(base_url=idp.url) as http:
        headers = {"last-event-id": str(made[1].id)}
        async with http.stream("GET", "/deny-list/events", headers=headers) as r:
            events = Events(r)
            assert [(await events.next())["id"] for _ in range(2)] == [str(made[2].id), str(made[3].id)]
            later = await asyncio.to_thread(container.denylist.deny, "jti", "j9", reason="", actor="t")
            assert (await events.next())["id"] == str(later.id)  # then live, in order, no duplicates


@pytest.mark.parametrize("last_id", ["99", "not-a-number", "-1", "9" * 30])
async def test_unreplayable_last_event_id_asks_for_a_resync(
    idp: LiveServer, container: Container, last_id: str
) -> None:
    await asyncio.to_thread(container.denylist.deny, "jti", "j", reason="", actor="t")
    async with open_stream(idp.url, {"last-event-id": last_id}) as r:
        events = Events(r)
        assert (await events.next())["event"] == "resync"
        with pytest.raises(StopAsyncIteration):
            await events.next()  # and the stream ends


async def test_a_slow_consumer_is_cut_off_not_silently_trimmed(container: Container) -> None:
    feed = DenyFeed(container.denylist, container.ephemeral, heartbeat=10, buffer_limit=3)
    stream = _Stream(3)
    items = [(i, f"set-{i}") for i in range(1, 5)]
    stream.offer(items[:3])
    assert not stream.ended
    stream.offer(items[3:])  # one too many: ended, so the client reconnects and replays from SQL
    assert stream.ended and len(stream.buffer) == 3
    assert feed.heartbeat == 10


async def test_signing_failure_makes_followers_resynchronise(container: Container) -> None:
    feed = DenyFeed(container.denylist, container.ephemeral, heartbeat=10)
    feed._loop = asyncio.get_running_loop()
    stream = _Stream(10)
    feed._streams.add(stream)

    def broken(change: DenyChange) -> str:
        raise LookupError("no active key")

    container.denylist.signed = broken  # type: ignore[method-assign]
    feed._on_changes([DenyChange(1, entry=DenyEntry(1, "jti", "j", time.time() + 60))])
    await asyncio.sleep(0.01)
    assert stream.resync and stream.ended  # never an unsigned event; the snapshot is fetched instead


async def test_shutdown_ends_open_streams(container: Container) -> None:
    server = idp_server(container)
    await server.astart()
    async with httpx.AsyncClient(base_url=server.url) as http, http.stream("GET", "/deny-list/events") as r:
        lines = r.aiter_lines()
        await lines.__anext__()
        started = time.monotonic()
        await server.astop()
        with pytest.raises((StopAsyncIteration, httpx.RemoteProtocolError, httpx.ReadError)):
            while True:
                await asyncio.wait_for(lines.__anext__(), 3.0)
        assert time.monotonic() - started < 1.5  # not the graceful-shutdown timeout


@pytest.mark.slow
def test_sigterm_ends_streams_at_once_under_idp_serve(tmp_path: Path) -> None:
    """`idp serve` + SIGTERM with a resource server connected: exits in about a second, not after 20 s."""
    import base64
    import secrets

    from idp.cli import main

    env = {
        **os.environ,
        "IDP_ISSUER": "http://127.0.0.1:8000",
        "IDP_DATABASE_URL": f"sqlite:///{tmp_path / 'idp.sqlite3'}",
        "IDP_REDIS_URL": "",
        "IDP_KEK": base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode(),
        "IDP_DEMO": "false",
        "IDP_DENYLIST_HEARTBEAT_SECONDS": "30",
    }
    old = {k: os.environ.get(k) for k in env if k.startswith("IDP_")}
    os.environ.update({k: v for k, v in env.items() if k.startswith("IDP_")})
    try:
        assert main(["db", "upgrade"]) == 0
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "idp.cli", "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "idp serve did not start"
            time.sleep(0.1)
        with httpx.stream("GET", f"http://127.0.0.1:{port}/deny-list/events", timeout=10) as r:
            lines = r.iter_lines()
            assert next(lines).startswith("retry:")
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            for _ in lines:
                pass  # the server ends the stream
        assert proc.wait(timeout=10) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it is done
        assert time.monotonic() - started < 5, "shutdown waited for the open stream"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_event_body_stays_small() -> None:
    """The SET for one entry is a few hundred bytes: thousands of revocations stream cheaply."""
    change = DenyChange(12, entry=DenyEntry(12, "subject", "u" * 22, 1.7e9, 1.7e9))
    assert len(orjson.dumps(change.public())) < 150
