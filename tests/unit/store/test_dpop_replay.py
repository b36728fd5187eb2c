"""Where the IdP remembers DPoP proof jtis: Redis shared by every worker, or one bounded cache per in-process store."""

from __future__ import annotations

import secrets

import pytest

from idp.clock import FrozenClock
from idp.crypto import derive_key
from idp.resource.dpop import MemoryReplayCache, ReplayCacheUnavailable
from idp.store.dpop_replay import StoreReplayCache, replay_cache
from idp.store.memory import MemoryStore
from idp.store.redis_store import RedisStore
from tests.unit.store.test_ephemeral_contract import DEAD_URL, REDIS_URL


def test_the_in_process_store_gets_one_bounded_cache_shared_by_its_users() -> None:
    clock = FrozenClock(0)
    store = MemoryStore(clock)
    one = replay_cache(store, clock, max_entries=2)
    assert isinstance(one, MemoryReplayCache)
    assert replay_cache(store, clock, max_entries=2) is one  # a second worker on the same store shares it
    assert replay_cache(MemoryStore(clock), clock, max_entries=2) is not one
    assert one.first_use("k:a", 10) and not one.first_use("k:a", 10)
    assert one.first_use("k:b", 10)
    with pytest.raises(ReplayCacheUnavailable):  # bounded: refuses rather than forgets
        one.first_use("k:c", 10)


@pytest.mark.postgres
def test_redis_is_shared_and_expires_with_the_proof() -> None:
    prefix = f"idptest:{secrets.token_hex(4)}:"
    one, two = RedisStore(REDIS_URL, prefix=prefix), RedisStore(REDIS_URL, prefix=prefix)
    try:
        a, b = replay_cache(one, FrozenClock(), max_entries=10), replay_cache(two, FrozenClock(), max_entries=10)
        assert isinstance(a, StoreReplayCache)
        assert a.first_use("jkt:jti", 300) and not b.first_use("jkt:jti", 300)  # across workers
        assert 290 < (one.ttl("dpop-jti:jkt:jti") or 0) <= 300
    finally:
        one.delete("dpop-jti:jkt:jti")
        one.close()
        two.close()


def test_an_unreachable_redis_refuses_the_proof() -> None:
    dead = RedisStore(DEAD_URL)
    try:
        with pytest.raises(ReplayCacheUnavailable):
            StoreReplayCache(dead).first_use("jkt:jti", 300)
    finally:
        dead.close()


def test_derived_keys_are_per_purpose_and_per_kek() -> None:
    kek = secrets.token_bytes(32)
    assert derive_key(kek, b"a") == derive_key(kek, b"a") and len(derive_key(kek, b"a")) == 32
    assert derive_key(kek, b"a") != derive_key(kek, b"b")
    assert derive_key(kek, b"a") != derive_key(secrets.token_bytes(32), b"a")
