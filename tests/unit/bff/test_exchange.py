"""TokenExchanger: the RFC 8693 request shape, the cache (per session, subject token and audience, until shortly
before expiry, bounded), single flight, and how refusals map."""

from __future__ import annotations

import asyncio
import dataclasses

import httpx
import pytest

from idp.bff.exchange import ExchangeFailed, TokenExchanger
from idp.bff.token_endpoint import IdpUnavailable, SessionEnded
from idp.clock import FrozenClock
from tests.unit.bff.fakes import FakeTokenEndpoint, MemorySessionStore, error, make_session, token_endpoint


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(1_800_000_000.0)


@pytest.fixture
def idp() -> FakeTokenEndpoint:
    return FakeTokenEndpoint()


def exchanger(idp, clock, **kw) -> TokenExchanger:
    return TokenExchanger(token_endpoint(idp), clock, **kw)


async def test_request_shape_and_result(idp, clock):
    s = make_session(clock)
    token = await exchanger(idp, clock).token_for(s, "https://orders.test")
    assert token == "x[https://orders.test]<-at-0#1"
    assert idp.exchanges() == [
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": "at-0",
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "audience": "https://orders.test",
        }
    ]


async def test_cached_until_shortly_before_expiry(idp, clock):
    x = exchanger(idp, clock, skew=30)
    s = make_session(clock)
    first = await x.token_for(s, "a")
    clock.advance(89)  # expires_in 120, skew 30
    assert await x.token_for(s, "a") == first
    clock.advance(1)
    assert await x.token_for(s, "a") != first
    assert len(idp.exchanges()) == 2


async def test_cache_key_is_session_subject_token_and_audience(idp, clock):
    x = exchanger(idp, clock)
    s = make_session(clock)
    await x.token_for(s, "a")
    await x.token_for(s, "b")
    await x.token_for(dataclasses.replace(s, key="k2"), "a")
    refreshed = dataclasses.replace(s, version=1, tokens=dataclasses.replace(s.tokens, access_token="at-1"))
    assert (await x.token_for(refreshed, "a")).endswith("<-at-1#4")
    await x.token_for(s, "a")
    await x.token_for(dataclasses.replace(s, version=7), "a")  # another write (a touch): same subject token
    assert len(idp.exchanges()) == 4


async def test_cache_is_bounded_lru(idp, clock):
    x = exchanger(idp, clock, max_entries=2)
    s = make_session(clock)
    await x.token_for(s, "a")
    await x.token_for(s, "b")
    await x.token_for(s, "a")  # a is now the most recent
    await x.token_for(s, "c")  # evicts b
    assert len(x) == 2
    await x.token_for(s, "a")
    assert len(idp.exchanges()) == 3
    await x.token_for(s, "b")
    assert len(idp.exchanges()) == 4


async def test_single_flight_per_key(idp, clock):
    x = exchanger(idp, clock)
    s = make_session(clock)
    idp.gate = asyncio.Event()
    tasks = [asyncio.create_task(x.token_for(s, "a")) for _ in range(15)]
    for _ in range(10):
        await asyncio.sleep(0)
    idp.gate.set()
    assert len(set(await asyncio.gather(*tasks))) == 1
    assert len(idp.exchanges()) == 1


async def test_refused_subject_token_ends_the_session(idp, clock):
    store = MemorySessionStore(clock)
    s = make_session(clock)
    await store.create(s)
    x = exchanger(idp, clock, store=store)
    await x.token_for(s, "a")
    idp.fail = lambda form: error(400, "invalid_grant")
    with pytest.raises(SessionEnded) as e:
        await x.token_for(s, "b")
    assert e.value.status == 401 and "k1" not in store.rows and len(x) == 0


@pytest.mark.parametrize("code", ["invalid_target", "unauthorized_client", "invalid_client", "invalid_request"])
async def test_other_refusals_are_bad_gateway(idp, clock, code):
    store = MemorySessionStore(clock)
    s = make_session(clock)
    await store.create(s)
    idp.fail = lambda form: error(400, code)
    with pytest.raises(ExchangeFailed) as e:
        await exchanger(idp, clock, store=store).token_for(s, "a")
    assert e.value.status == 502 and "k1" in store.rows


@pytest.mark.parametrize(
    "body",
    [
        {"access_token": "t", "token_type": "DPoP", "expires_in": 60},
        {"token_type": "Bearer", "expires_in": 60},
        {"access_token": "t", "token_type": "Bearer", "issued_token_type": "urn:ietf:params:oauth:token-type:id_token"},
    ],
)
async def test_odd_answers_are_bad_gateway(idp, clock, body):
    idp.fail = lambda form: httpx.Response(200, json=body)
    with pytest.raises(ExchangeFailed):
        await exchanger(idp, clock).token_for(make_session(clock), "a")


async def test_outage_is_unavailable_and_not_cached(idp, clock):
    x = exchanger(idp, clock)
    s = make_session(clock)
    idp.fail = lambda form: httpx.Response(502)
    with pytest.raises(IdpUnavailable):
        await x.token_for(s, "a")
    idp.fail = None
    assert await x.token_for(s, "a")
    assert len(idp.exchanges()) == 2


async def test_missing_expires_in_uses_a_short_default(idp, clock):
    idp.fail = lambda form: httpx.Response(200, json={"access_token": "t", "token_type": "Bearer"})
    x = exchanger(idp, clock, default_expires_in=60, skew=30)
    s = make_session(clock)
    await x.token_for(s, "a")
    clock.advance(31)
    await x.token_for(s, "a")
    assert len(idp.exchanges()) == 2


async def test_invalid_request_is_a_refused_subject(idp, clock):
    from idp.bff.exchange import SubjectRefused

    store = MemorySessionStore(clock)
    s = make_session(clock)
    await store.create(s)
    idp.fail = lambda form: error(400, "invalid_request")
    with pytest.raises(SubjectRefused) as e:
        await exchanger(idp, clock, store=store).token_for(s, "a")
    assert e.value.status == 502 and e.value.code == "exchange_failed"
    assert "k1" in store.rows  # the caller decides (refresh, retry once)
