"""TokenKeeper: refresh when stale, exactly once per session across tasks and workers; refusals end the
session, outages do not."""

from __future__ import annotations

import asyncio
import dataclasses

import httpx
import pytest

from idp.bff.refresh import TokenKeeper
from idp.bff.token_endpoint import IdpRefused, IdpUnavailable, SessionEnded
from idp.clock import FrozenClock
from tests.unit.bff.fakes import (
    FakeTokenEndpoint,
    MemorySessionStore,
    YieldingSleep,
    error,
    expire,
    make_session,
    token_endpoint,
)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(1_800_000_000.0)


@pytest.fixture
def store(clock: FrozenClock) -> MemorySessionStore:
    return MemorySessionStore(clock)


@pytest.fixture
def idp() -> FakeTokenEndpoint:
    return FakeTokenEndpoint()


def keeper(store, idp, clock, **kw) -> TokenKeeper:
    kw.setdefault("sleep", YieldingSleep())
    return TokenKeeper(store, token_endpoint(idp), clock, **kw)


async def test_fresh_token_is_used_without_a_call(store, idp, clock):
    s = make_session(clock, access_ttl=300)
    await store.create(s)
    assert await keeper(store, idp, clock).current(s) is s
    assert idp.requests == [] and store.lease_calls == 0


async def test_refreshes_inside_the_skew(store, idp, clock):
    s = make_session(clock, access_ttl=40)  # still valid, but within the 45 s skew
    await store.create(s)
    got = await keeper(store, idp, clock).current(s)
    assert got.tokens.access_token == "at-1" and got.tokens.refresh_token == "rt-1"
    assert got.version == 1 and got.tokens.access_expires_at == clock.now() + 300
    assert got.tokens.id_token == "idt"  # not in the refresh response: kept
    assert store.rows["k1"] == got
    assert idp.refreshes() == [{"grant_type": "refresh_token", "refresh_token": "rt-0"}]
    assert store.leases == {}  # released


async def test_skew_is_settable(store, idp, clock):
    s = make_session(clock, access_ttl=40)
    await store.create(s)
    assert await keeper(store, idp, clock, skew=10).current(s) is s
    clock.advance(31)
    assert (await keeper(store, idp, clock, skew=10).current(s)).version == 1


async def test_twenty_concurrent_callers_cause_one_refresh(store, idp, clock):
    s = expire(make_session(clock), clock)
    await store.create(s)
    idp.gate = asyncio.Event()
    k = keeper(store, idp, clock)
    tasks = [asyncio.create_task(k.current(s)) for _ in range(20)]
    for _ in range(10):
        await asyncio.sleep(0)
    idp.gate.set()
    got = await asyncio.gather(*tasks)
    assert len(idp.refreshes()) == 1
    assert {g.tokens.access_token for g in got} == {"at-1"}
    assert store.lease_calls == 1 and store.gets == 1


async def test_two_workers_refresh_once(store, idp, clock):
    """Two keepers (two processes) on one store: the lease makes one refresher; the other polls."""
    s = expire(make_session(clock), clock)
    await store.create(s)
    idp.gate = asyncio.Event()
    sleep_b = YieldingSleep()
    a, b = keeper(store, idp, clock), keeper(store, idp, clock, sleep=sleep_b)
    first = asyncio.create_task(a.current(s))
    for _ in range(5):
        await asyncio.sleep(0)
    waiting = [asyncio.create_task(b.current(s)) for _ in range(10)]
    for _ in range(20):
        await asyncio.sleep(0)
    assert sleep_b.delays  # b is polling, not refreshing
    idp.gate.set()
    got = await asyncio.gather(first, *waiting)
    assert len(idp.refreshes()) == 1
    assert {g.tokens.access_token for g in got} == {"at-1"}
    assert all(d <= 0.5 for d in sleep_b.delays) and sleep_b.delays[:2] == [0.05, 0.1]  # bounded backoff


async def test_a_worker_that_raced_past_a_finished_refresh_does_not_refresh_again(store, idp, clock):
    """Read the session before another worker's refresh, lease after it: the re-read sees new tokens."""
    s = expire(make_session(clock), clock)
    await store.create(s)
    fresh = await keeper(store, idp, clock).current(s)
    again = await keeper(store, idp, clock).current(s)  # a stale copy of the session
    assert again == fresh and len(idp.refreshes()) == 1


async def test_waiting_is_bounded(store, idp, clock):
    s = expire(make_session(clock), clock)
    await store.create(s)
    await store.lease("k1", "someone else", 60)  # a worker holds the lease and never writes
    sleep = YieldingSleep()
    with pytest.raises(IdpUnavailable):
        await keeper(store, idp, clock, sleep=sleep, wait_budget=2.0).current(s)
    assert sum(sleep.delays) == pytest.approx(2.0) and idp.requests == []
    assert "k1" in store.rows  # an outage, not the end of the session


async def test_a_lapsed_lease_is_taken_over(store, idp, clock):
    s = expire(make_session(clock), clock)
    await store.create(s)
    await store.lease("k1", "crashed worker", 1.0)
    sleep = YieldingSleep(clock)  # the injected sleep moves the clock: the lease lapses
    got = await keeper(store, idp, clock, sleep=sleep).current(s)
    assert got.tokens.access_token == "at-1" and len(idp.refreshes()) == 1


@pytest.mark.parametrize("code", ["invalid_grant"])
async def test_refused_refresh_ends_the_session(store, idp, clock, code):
    s = expire(make_session(clock), clock)
    await store.create(s)
    idp.fail = lambda form: error(400, code)
    with pytest.raises(SessionEnded) as e:
        await keeper(store, idp, clock).current(s)
    assert e.value.status == 401 and e.value.code == "session_ended"
    assert "k1" not in store.rows


async def test_reused_refresh_token_ends_the_session(store, idp, clock):
    s = expire(make_session(clock), clock)
    await store.create(s)
    idp.live_refresh = {"something else"}
    with pytest.raises(SessionEnded):
        await keeper(store, idp, clock).current(s)
    assert "k1" not in store.rows


async def test_no_refresh_token_ends_the_session(store, idp, clock):
    s = make_session(clock)
    s = expire(dataclasses.replace(s, tokens=dataclasses.replace(s.tokens, refresh_token=None)), clock)
    await store.create(s)
    with pytest.raises(SessionEnded):
        await keeper(store, idp, clock).current(s)
    assert idp.requests == [] and "k1" not in store.rows


async def test_gone_session_is_ended(store, idp, clock):
    s = expire(make_session(clock), clock)
    with pytest.raises(SessionEnded):
        await keeper(store, idp, clock).current(s)
    assert idp.requests == []


@pytest.mark.parametrize(
    "answer",
    [
        lambda form: httpx.Response(503),
        lambda form: httpx.Response(500, text="oops"),
        lambda form: httpx.Response(200, text="not json"),
        lambda form: httpx.Response(200, json={"token_type": "Bearer"}),
    ],
)
async def test_outage_keeps_the_session(store, idp, clock, answer):
    s = expire(make_session(clock), clock)
    await store.create(s)
    idp.fail = answer
    with pytest.raises(IdpUnavailable) as e:
        await keeper(store, idp, clock).current(s)
    assert e.value.status == 503
    assert store.rows["k1"] == s and store.leases == {}


@pytest.mark.parametrize("exc", [httpx.ReadTimeout("slow"), httpx.ConnectError("refused")])
async def test_transport_failure_keeps_the_session(store, idp, clock, exc):
    s = expire(make_session(clock), clock)
    await store.create(s)

    def boom(form):
        raise exc

    idp.fail = boom
    with pytest.raises(IdpUnavailable):
        await keeper(store, idp, clock).current(s)
    assert store.rows["k1"] == s


async def test_client_misconfiguration_is_a_bad_gateway_not_a_sign_out(store, idp, clock):
    s = expire(make_session(clock), clock)
    await store.create(s)
    idp.fail = lambda form: error(401, "invalid_client")
    with pytest.raises(IdpRefused) as e:
        await keeper(store, idp, clock).current(s)
    assert e.value.status == 502 and store.rows["k1"] == s


async def test_a_concurrent_write_is_kept_under_the_new_tokens(store, idp, clock):
    s = expire(make_session(clock), clock)
    await store.create(s)
    idp.gate = asyncio.Event()
    task = asyncio.create_task(keeper(store, idp, clock).current(s))
    for _ in range(10):
        await asyncio.sleep(0)
    other = dataclasses.replace(s, extra={"note": "x"}, version=1)
    assert await store.replace(other, expected_version=0)
    idp.gate.set()
    got = await task
    assert got.version == 2 and got.extra == {"note": "x"} and got.tokens.access_token == "at-1"


async def test_session_deleted_during_refresh_stays_deleted(store, idp, clock):
    s = expire(make_session(clock), clock)
    await store.create(s)
    idp.gate = asyncio.Event()
    task = asyncio.create_task(keeper(store, idp, clock).current(s))
    for _ in range(10):
        await asyncio.sleep(0)
    await store.delete("k1")  # a logout meanwhile
    idp.gate.set()
    with pytest.raises(SessionEnded):
        await task
    assert "k1" not in store.rows


async def test_a_cancelled_caller_does_not_cancel_the_refresh(store, idp, clock):
    s = expire(make_session(clock), clock)
    await store.create(s)
    idp.gate = asyncio.Event()
    k = keeper(store, idp, clock)
    caller = asyncio.create_task(k.current(s))
    for _ in range(10):
        await asyncio.sleep(0)
    caller.cancel()  # the browser went away
    idp.gate.set()
    for _ in range(30):
        await asyncio.sleep(0)
    assert store.rows["k1"].tokens.refresh_token == "rt-1"  # the rotated token was written


def test_lease_must_outlive_the_token_call(store, idp, clock):
    with pytest.raises(ValueError):
        TokenKeeper(store, token_endpoint(idp, timeout=10), clock, lease_ttl=10)


async def test_force_refreshes_a_fresh_token_once(store, idp, clock):
    s = make_session(clock, access_ttl=300)
    await store.create(s)
    k = keeper(store, idp, clock)
    got = await k.current(s, force=True)
    assert got.version == 1 and got.tokens.access_token == "at-1"
    # Another request forcing from the same (now superseded) version gets the refreshed session.
    assert await k.current(s, force=True) == got
    assert len(idp.refreshes()) == 1
