"""Sign-in round trips: an opaque id in the cookie, a record taken once, a bounded size, a cap per address."""

from __future__ import annotations

import asyncio
import secrets
import string

import pytest

from idp.bff.login import MAX_LOGIN_RECORD, LoginTooLarge, LoginTransactions, TooManyLogins
from idp.bff.sealing import LOGIN_ID_LENGTH, SessionCrypto
from idp.bff.session import LoginRecord
from idp.bff.stores.memory import MemorySessionStore
from idp.clock import FrozenClock

TTL = 600
FLOW = {"_state_idp_" + "S" * 30: {"data": {"nonce": "N" * 20, "code_verifier": "V" * 48}, "exp": 1.0}}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(1_800_000_000.0)  # a window boundary: 1_800_000_000 is a multiple of 600


@pytest.fixture
def crypto() -> SessionCrypto:
    return SessionCrypto(secrets.token_bytes(32))


@pytest.fixture
def store(crypto: SessionCrypto, clock: FrozenClock) -> MemorySessionStore:
    return MemorySessionStore(crypto, clock)


def logins(store: MemorySessionStore, crypto: SessionCrypto, clock: FrozenClock, per_ip: int = 3) -> LoginTransactions:
    return LoginTransactions(store, crypto, clock, ttl=TTL, per_ip=per_ip)


async def test_begin_gives_an_opaque_id_and_finish_takes_it_once(
    store: MemorySessionStore, crypto: SessionCrypto, clock: FrozenClock
) -> None:
    tx = logins(store, crypto, clock)
    ids = [await tx.begin(FLOW, "/x", ip="203.0.113.5") for _ in range(3)]
    assert len(set(ids)) == 3
    for login_id in ids:
        assert len(login_id) == LOGIN_ID_LENGTH and set(login_id) <= set(string.ascii_letters + string.digits + "-_")
        assert "S" * 10 not in login_id and "V" * 10 not in login_id
        assert crypto.login_key(login_id) in store.logins and login_id not in store.logins
    record = await tx.finish(ids[0])
    assert record is not None and record.flow == FLOW and record.return_to == "/x"
    assert record.expires_at == clock.now() + TTL
    assert await tx.finish(ids[0]) is None  # a replay finds nothing


async def test_finish_refuses_missing_malformed_and_unknown_ids(
    store: MemorySessionStore, crypto: SessionCrypto, clock: FrozenClock
) -> None:
    tx = logins(store, crypto, clock)
    login_id = await tx.begin(FLOW, "/", ip="203.0.113.5")
    for bad in (None, "", login_id[:-1], login_id + "A", "x" * 5000, secrets.token_urlsafe(32)):
        assert await tx.finish(bad) is None
    assert await tx.finish(login_id) is not None


async def test_concurrent_finishes_one_winner(
    store: MemorySessionStore, crypto: SessionCrypto, clock: FrozenClock
) -> None:
    tx = logins(store, crypto, clock)
    login_id = await tx.begin(FLOW, "/", ip="203.0.113.5")
    results = await asyncio.gather(*(tx.finish(login_id) for _ in range(8)))
    assert sum(r is not None for r in results) == 1


async def test_expired_record_is_refused(store: MemorySessionStore, crypto: SessionCrypto, clock: FrozenClock) -> None:
    tx = logins(store, crypto, clock)
    login_id = await tx.begin(FLOW, "/", ip="203.0.113.5")
    clock.advance(TTL)
    assert await tx.finish(login_id) is None


async def test_cap_per_address_with_retry_after(
    store: MemorySessionStore, crypto: SessionCrypto, clock: FrozenClock
) -> None:
    tx = logins(store, crypto, clock, per_ip=3)
    clock.advance(100)
    first = [await tx.begin(FLOW, "/", ip="203.0.113.5") for _ in range(3)]
    with pytest.raises(TooManyLogins) as refused:
        await tx.begin(FLOW, "/", ip="203.0.113.5")
    assert refused.value.retry_after == TTL - 100  # the rest of the window
    assert len(store.logins) == 3  # a refusal stores nothing
    await tx.begin(FLOW, "/", ip="203.0.113.6")  # another address has places of its own
    assert await tx.finish(first[0]) is not None  # the callback gives the place back
    await tx.begin(FLOW, "/", ip="203.0.113.5")
    with pytest.raises(TooManyLogins):
        await tx.begin(FLOW, "/", ip="203.0.113.5")


async def test_ipv6_counts_by_slash_64(store: MemorySessionStore, crypto: SessionCrypto, clock: FrozenClock) -> None:
    tx = logins(store, crypto, clock, per_ip=2)
    await tx.begin(FLOW, "/", ip="2001:db8:1:2::1")
    await tx.begin(FLOW, "/", ip="2001:db8:1:2:ffff:0:0:9")
    with pytest.raises(TooManyLogins):
        await tx.begin(FLOW, "/", ip="2001:db8:1:2:abcd::7")  # the same /64
    await tx.begin(FLOW, "/", ip="2001:db8:1:3::1")  # the next /64
    await tx.begin(FLOW, "/", ip="::ffff:198.51.100.7")
    await tx.begin(FLOW, "/", ip="198.51.100.7")
    with pytest.raises(TooManyLogins):
        await tx.begin(FLOW, "/", ip="198.51.100.7")  # an IPv4-mapped address counts as its IPv4 address


async def test_abandoned_records_count_until_their_window_is_no_longer_read(
    store: MemorySessionStore, crypto: SessionCrypto, clock: FrozenClock
) -> None:
    tx = logins(store, crypto, clock, per_ip=2)
    clock.advance(TTL - 1)
    await tx.begin(FLOW, "/", ip="203.0.113.5")
    await tx.begin(FLOW, "/", ip="203.0.113.5")
    clock.advance(1)  # the next window: both records are still live, and still count
    with pytest.raises(TooManyLogins) as refused:
        await tx.begin(FLOW, "/", ip="203.0.113.5")
    assert refused.value.retry_after == TTL
    clock.advance(TTL)  # two windows on: both expired long ago
    await tx.begin(FLOW, "/", ip="203.0.113.5")
    await tx.begin(FLOW, "/", ip="203.0.113.5")
    with pytest.raises(TooManyLogins):
        await tx.begin(FLOW, "/", ip="203.0.113.5")


async def test_both_windows_count_together(
    store: MemorySessionStore, crypto: SessionCrypto, clock: FrozenClock
) -> None:
    tx = logins(store, crypto, clock, per_ip=3)
    clock.advance(TTL - 10)
    await tx.begin(FLOW, "/", ip="203.0.113.5")
    await tx.begin(FLOW, "/", ip="203.0.113.5")
    clock.advance(20)  # the next window, the first two still live
    await tx.begin(FLOW, "/", ip="203.0.113.5")
    with pytest.raises(TooManyLogins):
        await tx.begin(FLOW, "/", ip="203.0.113.5")  # 2 in the previous window + 1 in this one


async def test_cap_holds_under_concurrency(
    store: MemorySessionStore, crypto: SessionCrypto, clock: FrozenClock
) -> None:
    tx = logins(store, crypto, clock, per_ip=5)

    async def attempt() -> bool:
        try:
            await tx.begin(FLOW, "/", ip="203.0.113.5")
        except TooManyLogins:
            return False
        return True

    assert sum(await asyncio.gather(*(attempt() for _ in range(20)))) == 5
    assert len(store.logins) == 5


async def test_record_size_is_bounded_before_it_counts(
    store: MemorySessionStore, crypto: SessionCrypto, clock: FrozenClock
) -> None:
    tx = logins(store, crypto, clock, per_ip=1)
    with pytest.raises(LoginTooLarge):
        await tx.begin({"_state_idp_x": {"data": {"pad": "p" * MAX_LOGIN_RECORD}}}, "/", ip="203.0.113.5")
    assert not store.logins and not store.slots
    await tx.begin(FLOW, "/" + "r" * 511, ip="203.0.113.5")  # the longest returnTo fits


async def test_a_failed_write_gives_the_place_back(crypto: SessionCrypto, clock: FrozenClock) -> None:
    class Failing(MemorySessionStore):
        async def put_login(self, record: LoginRecord) -> None:
            raise ConnectionError("store down")

    store = Failing(crypto, clock)
    tx = logins(store, crypto, clock, per_ip=1)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            await tx.begin(FLOW, "/", ip="203.0.113.5")
    assert all(count == 0 for count, _ in store.slots.values())
