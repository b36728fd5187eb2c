"""The SessionStore contract, the same tests over every store: in-process, SQL (SQLite, PostgreSQL), Redis."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from idp.bff.sealing import SessionCrypto, new_login_id, new_session_id
from idp.bff.session import BffSession, LoginRecord, SessionStore, TokenSet
from idp.bff.stores import open_store
from idp.bff.stores.memory import MemorySessionStore
from idp.bff.stores.redis import RedisSessionStore
from idp.bff.stores.sql import SqlSessionStore
from idp.clock import FrozenClock
from tests.conftest import REDIS_URL, _redis_reachable, _unavailable

ACCESS = "at-" + "A" * 40
REFRESH = "rt-" + "R" * 40
ID_TOKEN = "idt-" + "I" * 40


@pytest.fixture
def crypto() -> SessionCrypto:
    return SessionCrypto(secrets.token_bytes(32))


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(float(int(time.time())))


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres),
            pytest.param("redis", marks=pytest.mark.postgres)]
)  # fmt: skip
async def store(
    request: pytest.FixtureRequest, crypto: SessionCrypto, clock: FrozenClock, tmp_path: Path
) -> AsyncIterator[SessionStore]:
    kind = request.param
    if kind == "memory":
        s: SessionStore = open_store("memory://", crypto, clock)
    elif kind == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'bff.sqlite3'}", crypto, clock)
    elif kind == "postgresql":
        s = open_store(request.getfixturevalue("pg_database"), crypto, clock)  # a database of this session
        assert isinstance(s, SqlSessionStore)
        with s.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM bff_sessions"))
            conn.execute(sa.text("DELETE FROM bff_leases"))
            conn.execute(sa.text("DELETE FROM bff_logins"))
            conn.execute(sa.text("DELETE FROM bff_login_slots"))
    else:
        if not _redis_reachable():
            _unavailable("Redis at 127.0.0.1:6379")
        s = open_store(REDIS_URL, crypto, clock, prefix=f"bfftest:{secrets.token_hex(6)}:")
    try:
        yield s
    finally:
        if isinstance(s, RedisSessionStore):
            keys = [k async for k in s.redis.scan_iter(match=f"{s.prefix}*")]
            if keys:
                await s.redis.delete(*keys)
        await s.close()


def make_session(crypto: SessionCrypto, clock: FrozenClock, *, sub: str = "user-1", sid: str | None = "sid-1",
                 lifetime: float = 3600) -> BffSession:  # fmt: skip
    now = clock.now()
    return BffSession(
        key=crypto.store_key(new_session_id()),
        sub=sub,
        sid=sid,
        claims={"sub": sub, "name": "Alice"},
        tokens=TokenSet(ACCESS, now + 600, REFRESH, ID_TOKEN, "openid profile"),
        created_at=now,
        expires_at=now + lifetime,
    )


async def raw_records(store: SessionStore) -> list[str]:
    """Everything the store holds, as text, read around the store's API."""
    if isinstance(store, MemorySessionStore):
        return [repr(r) for r in [*store.records.values(), *store.logins.values()]]
    if isinstance(store, SqlSessionStore):
        with store.engine.connect() as conn:
            return [
                repr(tuple(row))
                for table in ("bff_sessions", "bff_logins")
                for row in conn.execute(sa.text(f"SELECT * FROM {table}"))
            ]
    assert isinstance(store, RedisSessionStore)
    out = []
    async for key in store.redis.scan_iter(match=f"{store.prefix}*"):
        kind = await store.redis.type(key)
        if kind == "hash":
            value: Any = await store.redis.hgetall(key)
        elif kind == "set":
            value = await store.redis.smembers(key)
        else:
            value = await store.redis.get(key)
        out.append(f"{key} {value!r}")
    return out


async def test_create_get_round_trip(store: SessionStore, crypto: SessionCrypto, clock: FrozenClock) -> None:
    s = make_session(crypto, clock)
    await store.create(s)
    got = await store.get(s.key)
    assert got == s
    assert await store.get(crypto.store_key(new_session_id())) is None


async def test_tokens_are_ciphertext_at_rest(store: SessionStore, crypto: SessionCrypto, clock: FrozenClock) -> None:
    s = make_session(crypto, clock)
    await store.create(s)
    raw = "\n".join(await raw_records(store))
    assert s.key in raw  # the record is there, read raw
    for secret in (ACCESS, REFRESH, ID_TOKEN, "AAAAAAAAAA", "RRRRRRRRRR", "IIIIIIIIII"):
        assert secret not in raw


async def test_ciphertext_is_bound_to_its_record(crypto: SessionCrypto, clock: FrozenClock) -> None:
    from idp.bff.sealing import SealBroken

    s = make_session(crypto, clock)
    sealed = crypto.seal_tokens(s.tokens, s.key)
    assert crypto.open_tokens(sealed, s.key) == s.tokens
    with pytest.raises(SealBroken):
        crypto.open_tokens(sealed, crypto.store_key(new_session_id()))  # associated data = the record key
    with pytest.raises(SealBroken):
        SessionCrypto(secrets.token_bytes(32)).open_tokens(sealed, s.key)


async def test_replace_is_compare_and_set(store: SessionStore, crypto: SessionCrypto, clock: FrozenClock) -> None:
    s = make_session(crypto, clock)
    await store.create(s)
    newer = TokenSet("at-2", clock.now() + 600, "rt-2", ID_TOKEN)
    first = replace(s, tokens=newer, version=1)
    assert await store.replace(first, expected_version=0)
    other = replace(s, tokens=TokenSet("at-3", clock.now() + 600, "rt-3", ID_TOKEN), version=1)
    assert not await store.replace(other, expected_version=0)  # somebody else won
    got = await store.get(s.key)
    assert got is not None and got.version == 1 and got.tokens.refresh_token == "rt-2"
    assert not await store.replace(replace(s, key=crypto.store_key("nope"), version=1), expected_version=0)


async def test_concurrent_replace_one_winner(store: SessionStore, crypto: SessionCrypto, clock: FrozenClock) -> None:
    s = make_session(crypto, clock)
    await store.create(s)
    attempts = [replace(s, tokens=replace(s.tokens, refresh_token=f"rt-{i}"), version=1) for i in range(8)]
    results = await asyncio.gather(*(store.replace(a, expected_version=0) for a in attempts))
    assert sum(results) == 1
    got = await store.get(s.key)
    assert got is not None and got.tokens.refresh_token == f"rt-{results.index(True)}"


async def test_lease_exclusive_under_concurrency(
    store: SessionStore, crypto: SessionCrypto, clock: FrozenClock
) -> None:
    key = make_session(crypto, clock).key
    results = await asyncio.gather(*(store.lease(key, f"worker-{i}", 30) for i in range(16)))
    assert sum(results) == 1
    winner = f"worker-{results.index(True)}"
    assert not await store.lease(key, "late", 30)
    await store.release(key, "late")  # not the owner: nothing happens
    assert not await store.lease(key, "late", 30)
    await store.release(key, winner)
    assert await store.lease(key, "late", 30)


async def test_lease_lapses(store: SessionStore, crypto: SessionCrypto, clock: FrozenClock) -> None:
    key = make_session(crypto, clock).key
    assert await store.lease(key, "a", 5)
    assert not await store.lease(key, "b", 5)
    if isinstance(store, RedisSessionStore):  # Redis times leases itself (PX)
        assert 0 < await store.redis.pttl(f"{store.prefix}lease:{key}") <= 5000
        return
    clock.advance(5)
    assert await store.lease(key, "b", 5)


async def test_delete_by_sid_and_sub(store: SessionStore, crypto: SessionCrypto, clock: FrozenClock) -> None:
    a1 = make_session(crypto, clock, sub="alice", sid="s1")
    a2 = make_session(crypto, clock, sub="alice", sid="s1")
    a3 = make_session(crypto, clock, sub="alice", sid="s2")
    b = make_session(crypto, clock, sub="bob", sid="s3")
    nosid = make_session(crypto, clock, sub="bob", sid=None)
    for s in (a1, a2, a3, b, nosid):
        await store.create(s)
    assert await store.delete_by_sid("s1") == 2
    assert await store.get(a1.key) is None and await store.get(a2.key) is None
    assert await store.get(a3.key) is not None
    assert await store.delete_by_sid("s1") == 0  # twice is harmless
    assert await store.delete_by_sub("bob") == 2
    assert await store.get(b.key) is None and await store.get(nosid.key) is None
    assert await store.get(a3.key) is not None
    await store.delete(a3.key)
    assert await store.get(a3.key) is None
    assert await store.delete_by_sub("alice") == 0


async def test_expired_sessions_vanish(store: SessionStore, crypto: SessionCrypto, clock: FrozenClock) -> None:
    s = make_session(crypto, clock, lifetime=60)
    await store.create(s)
    clock.advance(59)
    assert await store.get(s.key) is not None
    clock.advance(1)
    assert await store.get(s.key) is None
    assert not await store.replace(replace(s, version=1), expected_version=0)
    if isinstance(store, RedisSessionStore):
        ttl = await store.redis.pttl(store.record_key(s.key))
        assert 0 < ttl <= 60_000  # Redis drops it by itself
    else:
        await store.create(make_session(crypto, clock))  # a write purges what has expired
        assert s.key not in "\n".join(await raw_records(store))


VERIFIER = "pkce-verifier-" + "V" * 40
NONCE = "nonce-" + "N" * 24


def make_login(crypto: SessionCrypto, clock: FrozenClock, *, ttl: float = 600, slot: str = "") -> LoginRecord:
    flow = {f"_state_idp_{'S' * 30}": {"data": {"redirect_uri": "https://app.example/bff/callback",
                                               "nonce": NONCE, "code_verifier": VERIFIER}, "exp": 1.0}}  # fmt: skip
    return LoginRecord(
        key=crypto.login_key(new_login_id()), flow=flow, return_to="/orders?x=1", slot=slot,
        expires_at=clock.now() + ttl,
    )  # fmt: skip


async def test_login_put_take_once(store: SessionStore, crypto: SessionCrypto, clock: FrozenClock) -> None:
    record = make_login(crypto, clock, slot="login:abc:1")
    await store.put_login(record)
    assert await store.take_login(crypto.login_key(new_login_id())) is None
    assert await store.take_login(record.key) == record
    assert await store.take_login(record.key) is None  # single use


async def test_login_take_is_single_use_under_concurrency(
    store: SessionStore, crypto: SessionCrypto, clock: FrozenClock
) -> None:
    record = make_login(crypto, clock)
    await store.put_login(record)
    results = await asyncio.gather(*(store.take_login(record.key) for _ in range(16)))
    assert [r for r in results if r is not None] == [record]


async def test_login_verifier_is_ciphertext_at_rest(
    store: SessionStore, crypto: SessionCrypto, clock: FrozenClock
) -> None:
    record = make_login(crypto, clock)
    await store.put_login(record)
    raw = "\n".join(await raw_records(store))
    assert record.key in raw and "/orders?x=1" in raw  # the record is there, read raw
    for secret in (VERIFIER, "VVVVVVVVVV", NONCE, "NNNNNNNNNN"):
        assert secret not in raw


async def test_login_seal_is_bound_to_its_record(crypto: SessionCrypto, clock: FrozenClock) -> None:
    from idp.bff.sealing import SealBroken, from_login_row, to_login_row

    record = make_login(crypto, clock)
    row = to_login_row(crypto, record)
    assert from_login_row(crypto, row) == record
    with pytest.raises(SealBroken):
        from_login_row(crypto, {**row, "key": crypto.login_key(new_login_id())})
    with pytest.raises(SealBroken):  # a session's seal and a login record's never stand in for each other
        crypto.open_tokens(row["flow"], record.key)
    with pytest.raises(SealBroken):
        from_login_row(SessionCrypto(secrets.token_bytes(32)), row)
    assert crypto.login_key("same") != crypto.store_key("same")


async def test_login_records_expire(store: SessionStore, crypto: SessionCrypto, clock: FrozenClock) -> None:
    record = make_login(crypto, clock, ttl=60)
    await store.put_login(record)
    if isinstance(store, RedisSessionStore):
        ttl = await store.redis.pttl(store.login_record_key(record.key))
        assert 0 < ttl <= 60_000  # Redis drops it by itself
    clock.advance(60)
    assert await store.take_login(record.key) is None
    if not isinstance(store, RedisSessionStore):
        kept = make_login(crypto, clock, ttl=60)
        await store.put_login(make_login(crypto, clock))
        await store.put_login(kept)  # a write purges what has expired
        raw = "\n".join(await raw_records(store))
        assert record.key not in raw and kept.key in raw
    live = make_login(crypto, clock, ttl=60)
    await store.put_login(live)
    clock.advance(59)
    assert await store.take_login(live.key) == live


async def test_slots_hold_their_limit_under_concurrency(
    store: SessionStore, crypto: SessionCrypto, clock: FrozenClock
) -> None:
    counter = f"login:{secrets.token_hex(8)}:1"
    results = await asyncio.gather(*(store.claim_slot(counter, 5, 600) for _ in range(16)))
    assert sum(results) == 5
    assert await store.slots_taken(counter) == 5
    assert not await store.claim_slot(counter, 5, 600)
    assert await store.slots_taken(counter) == 5  # a refusal changes nothing
    await store.free_slot(counter)
    assert await store.slots_taken(counter) == 4
    assert await store.claim_slot(counter, 5, 600)
    assert not await store.claim_slot(counter, 5, 600)
    for _ in range(8):
        await store.free_slot(counter)
    assert await store.slots_taken(counter) == 0  # never below 0
    assert await store.claim_slot(counter, 1, 600) and not await store.claim_slot(counter, 1, 600)
    assert await store.slots_taken(f"login:{secrets.token_hex(8)}:1") == 0
    await store.free_slot(f"login:{secrets.token_hex(8)}:1")  # an absent counter: nothing happens


async def test_slots_lapse(store: SessionStore, crypto: SessionCrypto, clock: FrozenClock) -> None:
    counter = f"login:{secrets.token_hex(8)}:1"
    assert await store.claim_slot(counter, 1, 60)
    assert not await store.claim_slot(counter, 1, 60)
    if isinstance(store, RedisSessionStore):  # Redis times counters itself (PEXPIRE at the first claim)
        assert 0 < await store.redis.pttl(f"{store.prefix}slot:{counter}") <= 60_000
        return
    clock.advance(59)
    assert not await store.claim_slot(counter, 1, 60)  # a later claim does not extend the counter's life
    clock.advance(1)
    assert await store.slots_taken(counter) == 0
    assert await store.claim_slot(counter, 1, 60)
    assert await store.slots_taken(counter) == 1
