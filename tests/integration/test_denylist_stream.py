"""GET /deny-list/events: who may read it, signed SETs with id = version, heartbeats, the snapshot then the
tail on a replay, Last-Event-ID replay, stream caps, bounded buffers, and streams that end at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
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

from idp.crypto import b64url_decode
from idp.denylist.entries import DenyChange, DenyEntry
from idp.denylist.feed import TAIL_LIMIT, DenyFeed, _Stream
from idp.denylist.secevent import EVENT_DENY, SET_TYP
from idp.services import Services
from idp.tokens import jwt
from tests.integration.live_server import LiveServer, free_port
from tests.integration.resource_support import ISSUER, eventually, feed_auth, feed_reader, idp_server, running_idp

pytestmark = [pytest.mark.timing, pytest.mark.timeout(60)]  # live IdP, real streams


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"denylist_heartbeat_seconds": 0.2}


@pytest.fixture
def auth(container: Services) -> httpx.BasicAuth:
    """A resource server registered with the deny-list:read scope."""
    return feed_auth(container)


@pytest.fixture
async def idp(container: Services) -> AsyncIterator[LiveServer]:
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
async def open_stream(url: str, headers: dict[str, str], auth: httpx.Auth) -> AsyncIterator[httpx.Response]:
    async with (
        httpx.AsyncClient(base_url=url, auth=auth) as http,
        http.stream("GET", "/deny-list/events", headers=headers) as r,
    ):
        yield r


def verify_set(c: Services, token: str) -> dict[str, object]:
    header = jwt.peek_header(token)
    assert header["typ"] == SET_TYP  # RFC 8417 §2.3
    _, claims = jwt.verify(
        c.keyring, token, typ=SET_TYP, issuer=ISSUER, audience=None, now=c.clock.now(),
        require=("iss", "iat", "jti", "events"), allow_expired=True,
    )  # fmt: skip
    assert "exp" not in claims
    return claims


async def test_events_are_signed_sets_with_the_version_as_id(
    idp: LiveServer, container: Services, auth: httpx.Auth
) -> None:
    async with open_stream(idp.url, {}, auth) as r:  # no Last-Event-ID: the snapshot first
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        events = Events(r)
        first = await events.next()
        assert first["event"] == "snapshot" and first["id"] == "0"
        assert orjson.loads(first["data"]) == {"version": 0, "entries": []}
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


async def test_heartbeats_keep_an_idle_stream_talking(idp: LiveServer, auth: httpx.Auth) -> None:
    async with open_stream(idp.url, {}, auth) as r:
        lines = r.aiter_lines()
        started = time.monotonic()
        seen = []
        while len([x for x in seen if x == ": keepalive"]) < 3:
            seen.append(await asyncio.wait_for(lines.__anext__(), 2.0))
        assert time.monotonic() - started < 1.5  # every 0.2 s here (IDP_DENYLIST_HEARTBEAT_SECONDS)
        assert seen[0].startswith("retry:")


async def test_last_event_id_replays_what_was_missed(idp: LiveServer, container: Services, auth: httpx.Auth) -> None:
    made = [await asyncio.to_thread(container.denylist.deny, "jti", f"j{i}", reason="", actor="t") for i in range(4)]
    async with open_stream(idp.url, {"last-event-id": str(made[1].id)}, auth) as r:
        events = Events(r)
        replayed = [await events.next() for _ in range(2)]
        assert [(e["event"], e["id"]) for e in replayed] == [("deny", str(made[2].id)), ("deny", str(made[3].id))]
        later = await asyncio.to_thread(container.denylist.deny, "jti", "j9", reason="", actor="t")
        assert (await events.next())["id"] == str(later.id)  # then live, in order, no duplicates


@pytest.mark.parametrize("last_id", ["99", "not-a-number", "-1", "9" * 30])
async def test_unreplayable_last_event_id_gets_the_snapshot(
    idp: LiveServer, container: Services, auth: httpx.Auth, last_id: str
) -> None:
    entry = await asyncio.to_thread(container.denylist.deny, "jti", "j", reason="", actor="t")
    async with open_stream(idp.url, {"last-event-id": last_id}, auth) as r:
        events = Events(r)
        first = await events.next()
        assert first["event"] == "snapshot" and first["id"] == str(entry.id)
        assert orjson.loads(first["data"]) == {"version": entry.id, "entries": [entry.public()]}
        later = await asyncio.to_thread(container.denylist.deny, "jti", "j2", reason="", actor="t")
        assert (await events.next())["id"] == str(later.id)  # and the stream goes on


async def test_a_replay_from_zero_is_the_snapshot_then_the_live_tail(
    idp: LiveServer, container: Services, auth: httpx.Auth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many entries: one snapshot event, no signature or SQL row per entry; then each change as a SET."""
    count = TAIL_LIMIT + 50
    made = await asyncio.to_thread(
        container.denylist.deny_many, [("jti", f"j{i}", None) for i in range(count)], reason="", actor="t"
    )
    signed: list[int] = []
    real_signed = container.denylist.signed
    monkeypatch.setattr(container.denylist, "signed", lambda ch: signed.append(ch.version) or real_signed(ch))
    for last_id in ("0", str(made[10].id), None):  # from 0 and from further behind than a tail, or nothing
        async with open_stream(idp.url, {} if last_id is None else {"last-event-id": last_id}, auth) as r:
            events = Events(r)
            first = await events.next()
            assert first["event"] == "snapshot" and first["id"] == str(made[-1].id)
            doc = orjson.loads(first["data"])
            assert doc["version"] == made[-1].id and doc["entries"] == [e.public() for e in made]
            assert signed == []  # the snapshot signs nothing
            later = await asyncio.to_thread(container.denylist.deny, "subject", "u1", reason="", actor="t")
            live = await events.next()
            assert live["event"] == "deny" and live["id"] == str(later.id)
            assert verify_set(container, live["data"])["events"][EVENT_DENY]["entry"] == later.public()
        signed.clear()
        made.append(later)
    # A short gap is still replayed as SETs (not the whole list again), as is "0" when little happened since.
    async with open_stream(idp.url, {"last-event-id": str(made[-3].id)}, auth) as r:
        events = Events(r)
        assert [(await events.next())["id"] for _ in range(2)] == [str(made[-2].id), str(made[-1].id)]


async def test_the_feed_needs_an_authenticated_client(idp: LiveServer, container: Services) -> None:
    async with httpx.AsyncClient(base_url=idp.url) as http:
        for path in ("/deny-list", "/deny-list/events"):
            r = await http.get(path)
            assert r.status_code == 401 and r.json()["error"] == "invalid_client", path
            assert r.headers["www-authenticate"].startswith("Basic ")  # RFC 9110 §15.5.2
            client_id, _ = feed_reader(container)
            assert (await http.get(path, auth=(client_id, "wrong"))).status_code == 401
            r = await http.get(path, headers={"authorization": "Bearer something"})
            assert r.status_code == 401 and r.json()["error"] == "invalid_client"
            assert (await http.get(path, auth=feed_reader(container, scope="api:read"))).status_code == 403
            r = await http.get(path, auth=feed_reader(container, scope="api:read"))
            assert r.json()["error"] == "insufficient_scope" and "www-authenticate" not in r.headers
            public = container.clients.create(
                name="App", kind="native", redirect_uris=["http://127.0.0.1/cb"], scope="deny-list:read"
            )[0]
            r = await http.post(path, data={"client_id": public.client_id})
            assert r.status_code == 401  # a public client cannot read it, whatever its scope


async def test_any_registered_method_works_over_post(idp: LiveServer, container: Services) -> None:
    """client_secret_post (and private_key_jwt) need a body: POST takes the form, as introspection does."""
    client, secret = container.clients.create(
        name="RS", kind="service", scope="deny-list:read", auth_method="client_secret_post"
    )
    form = {"client_id": client.client_id, "client_secret": secret or ""}
    entry = await asyncio.to_thread(container.denylist.deny, "jti", "j", reason="", actor="t")
    async with httpx.AsyncClient(base_url=idp.url) as http:
        r = await http.post("/deny-list", data=form)
        assert r.status_code == 200 and r.json()["version"] == entry.id
        r412 = await http.post("/deny-list", data=form, headers={"if-none-match": r.headers["etag"]})
        assert r412.status_code == 412  # RFC 9110 §13.1.2: not 304 for a POST
        assert (await http.get("/deny-list", auth=(client.client_id, secret or ""))).status_code == 401
        async with http.stream("POST", "/deny-list/events", data=form) as s:
            assert s.status_code == 200
            assert (await Events(s).next())["event"] == "snapshot"


CAPPED = {"denylist_heartbeat_seconds": 0.2, "denylist_streams_per_client": 2, "denylist_max_streams": 3}


@pytest.mark.parametrize("settings_overrides", [CAPPED])
async def test_streams_are_capped_per_client_and_per_process(idp: LiveServer, container: Services) -> None:
    one, other = feed_reader(container), feed_reader(container)
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=idp.url))
        reading = []  # an abandoned line iterator closes its connection when collected

        async def stream(auth: tuple[str, str]) -> httpx.Response:
            r = await stack.enter_async_context(http.stream("GET", "/deny-list/events", auth=auth))
            if r.status_code == 200:
                reading.append(r.aiter_lines())
                await reading[-1].__anext__()  # the stream is open
            return r

        first = await stream(one)
        assert (await stream(one)).status_code == 200
        refused = await stream(one)
        assert refused.status_code == 429 and refused.headers["retry-after"].isdigit()
        await refused.aread()
        assert orjson.loads(refused.content)["error"] == "too_many_streams"
        assert (await stream(other)).status_code == 200  # another client is not held back by this one
        busy = await stream(feed_reader(container))
        assert busy.status_code == 503 and busy.headers["retry-after"].isdigit()  # the process cap
        await first.aclose()  # one of `one`'s streams ends: it may open another
        feed = container.denylist_feed

        async def released() -> bool:
            return bool(feed.streams_of(one[0]) == 1)

        await eventually(released, 3.0, "the ended stream frees its slot")
        assert (await stream(one)).status_code == 200


async def test_a_slow_consumer_is_cut_off_not_silently_trimmed(container: Services) -> None:
    feed = DenyFeed(container.denylist, container.ephemeral, heartbeat=10, buffer_limit=3)
    stream = _Stream(3)
    items = [(i, f"set-{i}") for i in range(1, 5)]
    stream.offer(items[:3])
    assert not stream.ended
    stream.offer(items[3:])  # one too many: ended, so the client reconnects and replays from SQL
    assert stream.ended and len(stream.buffer) == 3
    assert feed.heartbeat == 10


async def test_signing_failure_makes_followers_resynchronise(container: Services) -> None:
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


async def test_shutdown_ends_open_streams(container: Services, auth: httpx.Auth) -> None:
    server = idp_server(container)
    await server.astart()
    async with open_stream(server.url, {}, auth) as r:
        lines = r.aiter_lines()
        await lines.__anext__()
        started = time.monotonic()
        await server.astop()
        with pytest.raises((StopAsyncIteration, httpx.RemoteProtocolError, httpx.ReadError)):
            while True:
                await asyncio.wait_for(lines.__anext__(), 3.0)
        assert time.monotonic() - started < 1.5  # not the graceful-shutdown timeout


@pytest.mark.slow
def test_sigterm_ends_streams_at_once_under_idp_serve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
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
        capsys.readouterr()
        create = ["clients", "create", "--name", "RS", "--type", "service", "--scope", "deny-list:read", "--json"]
        assert main(create) == 0
        reader = orjson.loads(capsys.readouterr().out)
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
        auth = (reader["client_id"], reader["client_secret"])
        with httpx.stream("GET", f"http://127.0.0.1:{port}/deny-list/events", auth=auth, timeout=10) as r:
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


async def test_a_stream_frees_its_slot_even_if_the_client_left_before_the_first_event(container: Services) -> None:
    from starlette.requests import ClientDisconnect

    from idp.web.denylist import _Stream as StreamResponse

    feed = DenyFeed(container.denylist, container.ephemeral, heartbeat=10, per_client=1)
    events, release = feed.open_stream(None, "rs")
    assert feed.streams_of("rs") == 1

    async def gone(message: object) -> None:
        raise OSError("client disconnected")

    async def receive() -> dict[str, str]:
        return {"type": "http.disconnect"}

    scope = {"type": "http", "asgi": {"spec_version": "2.4"}, "method": "GET", "path": "/deny-list/events"}
    with pytest.raises(ClientDisconnect):
        await StreamResponse(events, release, media_type="text/event-stream")(scope, receive, gone)
    assert feed.streams_of("rs") == 0  # the generator never ran; the response freed the slot
    release()  # idempotent
    assert feed.streams_of("rs") == 0
    feed.open_stream(None, "rs")  # and the client may open another


@pytest.mark.parametrize("change", ["rotate", "disable", "scope"])
async def test_an_open_stream_ends_when_its_client_may_no_longer_read(
    idp: LiveServer, container: Services, change: str
) -> None:
    feed = container.denylist_feed
    feed.reauthorize_seconds = 0.2  # 30 s by default
    (one, secret), kept = feed_reader(container), feed_auth(container)
    async with open_stream(idp.url, {}, httpx.BasicAuth(one, secret)) as r, open_stream(idp.url, {}, kept) as other:
        events, others = Events(r), Events(other)
        assert (await events.next())["event"] == "snapshot" and (await others.next())["event"] == "snapshot"
        if change == "rotate":  # a leaked secret is rotated away: the stream holding it ends
            await asyncio.to_thread(container.clients.rotate_secret, one)
        elif change == "disable":
            await asyncio.to_thread(container.client_admin.set_disabled, one, True, actor="test")
        else:
            await asyncio.to_thread(container.clients.update, one, scope="api:read")
        cut_off = change == "disable"  # written before the client is disabled: every stream gets it first
        with pytest.raises(StopAsyncIteration):
            for _ in range(2 if cut_off else 1):
                await events.next(timeout=3.0)
        if cut_off:
            assert (await others.next())["event"] != "snapshot"
        entry = await asyncio.to_thread(container.denylist.deny, "jti", "j", reason="", actor="t")
        assert (await others.next())["id"] == str(entry.id)  # the other client's stream goes on
