"""DenyListFollower against a fake feed: it authenticates, applies the snapshot then signed SETs, resumes with
Last-Event-ID, and treats refusals (401/403/429) as what they are."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable

import httpx
import orjson
import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from idp.denylist.entries import DenyChange, DenyEntry
from idp.denylist.secevent import SET_TYP, set_claims
from idp.resource import ClientSecret, DenyListFollower, JwksCache, PrivateKeyJwt
from idp.resource.follower import _retry_after
from tests.unit.resource.kit import ISSUER, FakeIdP

Handler = Callable[[httpx.Request], httpx.Response]


def entry(i: int) -> DenyEntry:
    return DenyEntry(i, "jti", f"j{i}", time.time() + 600)


def sse(*events: tuple[str, int, str]) -> bytes:
    return b"retry: 1000\n\n" + b"".join(b"id: %d\nevent: %s\ndata: %s\n\n" % (v, e.encode(), d.encode())
                                          for e, v, d in events)  # fmt: skip


def signed(idp: FakeIdP, change: DenyChange) -> str:
    kid = idp.kid("ES256")
    claims = set_claims(change, issuer=ISSUER, now=time.time())
    return jws.serialize_compact({"alg": "ES256", "typ": SET_TYP, "kid": kid}, orjson.dumps(claims),
                                 idp.keys[kid][1], algorithms=["ES256"])  # fmt: skip


def follower_for(
    idp: FakeIdP, feed: Handler, credentials: object, waits: list[float] | None = None
) -> DenyListFollower:
    """A follower of ``feed`` whose reconnect pauses are recorded in ``waits`` instead of slept."""

    async def pause(seconds: float) -> None:
        (waits if waits is not None else []).append(seconds)
        await asyncio.sleep(0)

    def handler(request: httpx.Request) -> httpx.Response:
        return feed(request) if request.url.path == "/deny-list/events" else idp.handler(request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url=ISSUER)
    return DenyListFollower(issuer=ISSUER, http=http, jwks=JwksCache(f"{ISSUER}/jwks.json", http),
                            credentials=credentials, reconnect_min=0.01, reconnect_max=0.05, sleep=pause)  # type: ignore[arg-type]  # fmt: skip


async def until(check: Callable[[], bool], rounds: int = 10_000) -> None:
    """Let the follower's task run until ``check`` holds (every response here is immediate)."""
    for _ in range(rounds):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError("not reached")


async def test_snapshot_then_sets_then_resume_with_credentials() -> None:
    idp = FakeIdP(("ES256",))
    seen: list[httpx.Request] = []
    snapshot = {"version": 2, "entries": [entry(1).public(), entry(2).public()]}

    def feed(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if "last-event-id" not in request.headers:
            body = sse(
                ("snapshot", 2, orjson.dumps(snapshot).decode()), ("deny", 3, signed(idp, DenyChange(3, entry(3))))
            )
        else:
            body = sse(("deny", 4, signed(idp, DenyChange(4, removed=1))))
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    follower = follower_for(idp, feed, ClientSecret("rs id", "s:cret"))
    await follower.start(wait=2)
    try:
        await until(lambda: follower.version == 4)
        assert not follower.is_denied({"jti": "j1"}) and follower.is_denied({"jti": "j2"})
        assert follower.is_denied({"jti": "j3"}) and follower.snapshots == 1
        assert base64.b64decode(seen[0].headers["authorization"][6:]) == b"rs%20id:s%3Acret"  # RFC 6749 §2.3.1
        assert seen[0].method == "GET" and seen[1].headers["last-event-id"] == "3"  # resumed, not refetched
    finally:
        await follower.aclose()


async def test_private_key_jwt_posts_a_fresh_assertion_each_time() -> None:
    idp = FakeIdP(("ES256",))
    key = ECKey.generate_key("P-256")
    seen: list[httpx.Request] = []

    def feed(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=sse(("snapshot", 0, '{"version":0,"entries":[]}')),
                              headers={"content-type": "text/event-stream"})  # fmt: skip

    creds = PrivateKeyJwt("rs", key.as_pem(private=True), audience=ISSUER, key_id="k1")
    follower = follower_for(idp, feed, creds)
    await follower.start(wait=2)
    try:
        await until(lambda: len(seen) >= 2)
    finally:
        await follower.aclose()
    forms = [dict(httpx.QueryParams(r.content.decode())) for r in seen[:2]]
    assert all(r.method == "POST" and "authorization" not in r.headers for r in seen[:2])
    assert forms[0]["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    claims = [jws.deserialize_compact(f["client_assertion"], key).payload for f in forms]
    first, second = (orjson.loads(c) for c in claims)
    assert first["iss"] == first["sub"] == "rs" and first["aud"] == ISSUER and first["exp"] - first["iat"] == 60
    assert first["jti"] != second["jti"]  # RFC 7523 §3: an assertion is used once


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials_leave_the_copy_stale(status: int, caplog: pytest.LogCaptureFixture) -> None:
    idp = FakeIdP(("ES256",))
    follower = follower_for(idp, lambda r: httpx.Response(status, json={"error": "x"}), ClientSecret("rs", "bad"))
    await follower.start(wait=0)
    try:
        await until(lambda: follower.reconnects >= 1)
        assert follower.is_stale() and not follower.synced.is_set()
    finally:
        await follower.aclose()
    assert ("wrong client credentials" if status == 401 else "lacks deny-list:read") in caplog.text


async def test_retry_after_is_honoured() -> None:
    idp = FakeIdP(("ES256",))
    waits: list[float] = []
    feed = lambda request: httpx.Response(429, headers={"retry-after": "7"})  # noqa: E731
    follower = follower_for(idp, feed, ClientSecret("rs", "s"), waits)
    await follower.start(wait=0)
    try:
        await until(lambda: len(waits) >= 2)
    finally:
        await follower.aclose()
    assert waits[:2] == [7.0, 7.0]  # not the 10-50 ms backoff
    assert _retry_after("nan") == 0 and _retry_after("-5") == 0 and _retry_after("9999") == 60
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0
