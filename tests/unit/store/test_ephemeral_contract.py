"""One contract for every EphemeralStore: MemoryStore and RedisStore must behave alike.

Redis tests use redis://127.0.0.1:6379/0 with a random key prefix per test. They are
skipped when Redis is unreachable, but fail when ``CI`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass

import pytest
import redis

from idp.clock import FrozenClock
from idp.ephemeral import EphemeralStore, StoreUnavailable
from idp.store.memory import MemoryStore
from idp.store.redis_store import RedisStore
from tests.conftest import _unavailable

REDIS_URL = "redis://127.0.0.1:6379/0"
DEAD_URL = "redis://127.0.0.1:1/0"
READY = b"__ready__"
LONG = 30.0


def _redis_missing() -> None:
    _unavailable(f"Redis at {REDIS_URL}")


@dataclass
class Harness:
    kind: str
    store: EphemeralStore
    clock: FrozenClock | None
    short: float
    """A TTL this harness can let pass quickly: fake time for memory, real time for Redis."""

    def pass_time(self, seconds: float) -> None:
        if self.clock is not None:
            self.clock.advance(seconds)
        else:
            time.sleep(seconds)

    def after_short(self, predicate: Callable[[], bool]) -> bool:
        """Let ``short`` seconds pass, then (Redis: within a bounded poll) expect ``predicate``."""
        if self.clock is not None:
            self.clock.advance(self.short + 0.001)
            return predicate()
        time.sleep(self.short)
        deadline = time.monotonic() + 1.0
        while not predicate():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def subscriber_count(self, channel: str) -> int:
        if isinstance(self.store, MemoryStore):
            return len(self.store._subs.get(channel, ()))
        assert isinstance(self.store, RedisStore)
        with contextlib.closing(redis.Redis.from_url(REDIS_URL)) as raw:
            [(_, count)] = raw.pubsub_numsub(self.store._k(channel))
        return int(count)


def _redis_store(prefix: str, url: str = REDIS_URL) -> RedisStore:
    store = RedisStore(url, prefix=prefix)
    if not store.ping():
        store.close()
        _redis_missing()
    return store


def _delete_prefix(prefix: str) -> None:
    with contextlib.closing(redis.Redis.from_url(REDIS_URL)) as raw:
        keys = list(raw.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            raw.delete(*keys)


@contextlib.contextmanager
def _prefixed_redis(url: str = REDIS_URL) -> Iterator[RedisStore]:
    prefix = f"idptest:{uuid.uuid4().hex}:"
    store = _redis_store(prefix, url)
    try:
        yield store
    finally:
        store.close()
        _delete_prefix(prefix)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.timing)])  # Redis TTLs: real time
def h(request: pytest.FixtureRequest) -> Iterator[Harness]:
    if request.param == "memory":
        clock = FrozenClock(1_700_000_000.0)
        store = MemoryStore(clock)
        try:
            yield Harness("memory", store, clock, short=10.0)
        finally:
            store.close()
    else:
        with _prefixed_redis() as redis_store:
            yield Harness("redis", redis_store, None, short=0.05)


@pytest.fixture
def store(h: Harness) -> EphemeralStore:
    return h.store


# -- key/value -------------------------------------------------------------


def test_put_get_overwrite_delete(store: EphemeralStore) -> None:
    assert store.get("k") is None
    store.put("k", b"v1", LONG)
    assert store.get("k") == b"v1"
    store.put("k", b"v2", LONG)
    assert store.get("k") == b"v2"
    store.delete("k")
    assert store.get("k") is None
    store.delete("k")  # deleting an absent key is fine


def test_binary_values_round_trip(store: EphemeralStore) -> None:
    value = bytes(range(256))
    store.put("bin", value, LONG)
    assert store.get("bin") == value
    assert store.take("bin") == value


def test_values_must_be_bytes(store: EphemeralStore) -> None:
    with pytest.raises(TypeError):
        store.put("k", "text", LONG)  # type: ignore[arg-type]
    assert store.get("k") is None


def test_ttl_expiry(h: Harness) -> None:
    store = h.store
    store.put("gone", b"v", h.short)
    store.put("stays", b"v", LONG)
    assert store.get("gone") == b"v"
    if h.clock is not None:  # fake time: check the boundary too
        h.clock.advance(h.short - 0.01)
        assert store.get("gone") == b"v"
    assert h.after_short(lambda: store.get("gone") is None)
    assert store.take("gone") is None
    assert store.ttl("gone") is None
    assert store.get("stays") == b"v"


def test_put_overwrite_resets_ttl(h: Harness) -> None:
    store = h.store
    store.put("k", b"v1", h.short)
    store.put("k", b"v2", LONG)
    h.pass_time(h.short + 0.02)
    assert store.get("k") == b"v2"


def test_zero_ttl_is_floored_not_rejected(h: Harness) -> None:
    h.store.put("k", b"v", 0)
    assert h.after_short(lambda: h.store.get("k") is None)
    with pytest.raises(ValueError):
        h.store.put("k", b"v", float("inf"))


def test_ttl(h: Harness) -> None:
    store = h.store
    assert store.ttl("absent") is None
    store.put("k", b"v", LONG)
    left = store.ttl("k")
    assert left is not None
    assert LONG - 1 < left <= LONG
    h.pass_time(0.05)
    later = store.ttl("k")
    assert later is not None
    assert later < left


def test_put_if_absent(h: Harness) -> None:
    store = h.store
    assert store.put_if_absent("jti", b"first", LONG) is True
    assert store.put_if_absent("jti", b"second", LONG) is False
    assert store.get("jti") == b"first"
    store.delete("jti")
    assert store.put_if_absent("jti", b"third", h.short) is True
    assert h.after_short(lambda: store.get("jti") is None)
    assert store.put_if_absent("jti", b"fourth", LONG) is True
    assert store.get("jti") == b"fourth"


def test_take_returns_once(store: EphemeralStore) -> None:
    store.put("code", b"secret", LONG)
    assert store.take("code") == b"secret"
    assert store.take("code") is None
    assert store.get("code") is None
    assert store.take("never") is None


def test_claim_sets_the_marker_once_and_takes_the_value_with_it(store: EphemeralStore) -> None:
    store.put("code", b"secret", LONG)
    assert store.claim("used", "code", LONG) == (True, b"secret")
    assert store.get("code") is None
    assert store.get("used") is not None
    assert store.claim("used", "code", LONG) == (False, None)  # a replay: the marker says "used"
    assert store.claim("used-2", "unknown", LONG) == (True, None)  # first, but nothing to take
    store.put("code-3", b"kept", LONG)
    assert store.claim("used", "code-3", LONG) == (False, None)
    assert store.get("code-3") == b"kept", "a caller that did not set the marker takes nothing"


def test_claim_is_atomic_under_concurrency(store: EphemeralStore) -> None:
    for round_ in range(5):
        store.put(f"code-{round_}", b"the-code", LONG)
        barrier = threading.Barrier(20)
        results: list[tuple[bool, bytes | None]] = []
        lock = threading.Lock()

        def worker(n: int = round_, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            got = store.claim(f"used-{n}", f"code-{n}", LONG)
            with lock:
                results.append(got)

        pool = [threading.Thread(target=worker) for _ in range(20)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(5)
        assert sorted(results, key=lambda r: r[0]) == [(False, None)] * 19 + [(True, b"the-code")]


def test_take_is_atomic_under_concurrency(store: EphemeralStore) -> None:
    threads = 20
    for round_ in range(5):
        key = f"code-{round_}"
        store.put(key, b"the-code", LONG)
        barrier = threading.Barrier(threads)
        results: list[bytes | None] = []
        lock = threading.Lock()

        def worker(key: str = key, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            got = store.take(key)
            with lock:
                results.append(got)

        pool = [threading.Thread(target=worker) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(5)
        assert len(results) == threads
        assert [r for r in results if r is not None] == [b"the-code"]


def test_incr_counts_and_window_starts_at_first_increment(h: Harness) -> None:
    store = h.store
    assert [store.incr("hits", LONG) for _ in range(3)] == [1, 2, 3]
    assert store.get("hits") == b"3"
    first = store.ttl("hits")
    assert first is not None
    assert LONG - 1 < first <= LONG
    h.pass_time(0.05)
    assert store.incr("hits", LONG) == 4
    later = store.ttl("hits")
    assert later is not None
    assert later < first  # later increments do not extend the window
    assert store.incr("other", LONG) == 1  # counters are independent


def test_incr_window_expiry_restarts_count(h: Harness) -> None:
    store = h.store
    assert store.incr("fails", h.short) == 1
    assert store.incr("fails", h.short) == 2
    assert h.after_short(lambda: store.get("fails") is None)
    assert store.incr("fails", h.short) == 1


def test_incr_concurrent_increments_are_not_lost(store: EphemeralStore) -> None:
    def bump() -> None:
        for _ in range(10):
            store.incr("n", LONG)

    pool = [threading.Thread(target=bump) for _ in range(10)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(5)
    assert store.get("n") == b"100"


def test_reserve_counts_up_to_the_limit_and_refusals_change_nothing(h: Harness) -> None:
    store = h.store
    assert [store.reserve("tries", 3, LONG) for _ in range(5)] == [1, 2, 3, None, None]
    assert store.get("tries") == b"3"
    first = store.ttl("tries")
    assert first is not None and LONG - 1 < first <= LONG
    assert store.reserve("tries", 4, LONG) == 4  # a higher limit admits one more
    assert store.reserve("tries", 0, LONG) is None
    assert store.reserve("absent", 0, LONG) is None and store.get("absent") is None  # refused: nothing created
    store.put("shared", b"2", LONG)
    assert store.incr("shared", LONG) == 3 and store.reserve("shared", 4, LONG) == 4  # one counter, both ways


def test_reserve_window_starts_at_the_first_increment(h: Harness) -> None:
    store = h.store
    assert store.reserve("w", 5, h.short) == 1
    assert store.reserve("w", 5, h.short) == 2
    assert h.after_short(lambda: store.get("w") is None)
    assert store.reserve("w", 5, h.short) == 1


def test_release_gives_back_one_never_below_zero_and_keeps_the_ttl(h: Harness) -> None:
    store = h.store
    store.reserve("r", 2, LONG)
    store.reserve("r", 2, LONG)
    assert store.reserve("r", 2, LONG) is None
    before = store.ttl("r")
    store.release("r")
    assert store.get("r") == b"1"
    after = store.ttl("r")
    assert before is not None and after is not None and after <= before  # not extended, not dropped
    assert store.reserve("r", 2, LONG) == 2
    for _ in range(4):
        store.release("r")
    assert store.get("r") == b"0"
    store.release("never")
    assert store.get("never") is None


def test_reserve_is_atomic_under_concurrency(store: EphemeralStore) -> None:
    """Of many concurrent reservations exactly ``limit`` succeed: none over, none lost."""
    results: list[int | None] = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def go() -> None:
        start.wait(5)
        for _ in range(5):
            n = store.reserve("slots", 7, LONG)
            with lock:
                results.append(n)

    pool = [threading.Thread(target=go) for _ in range(20)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(5)
    assert sorted(n for n in results if n is not None) == [1, 2, 3, 4, 5, 6, 7]
    assert results.count(None) == 93
    assert store.get("slots") == b"7"


def test_ping(store: EphemeralStore) -> None:
    assert store.ping() is True


# -- publish/subscribe -----------------------------------------------------


async def _subscribed(store: EphemeralStore, channel: str) -> AsyncGenerator[bytes, None]:
    """Start a subscription and return it once it demonstrably receives messages.

    Subscribing is asynchronous (Redis confirms it over the wire), so publish READY
    until one arrives. Later reads skip stray READYs with :func:`_recv`.
    """
    it = store.subscribe(channel)
    assert isinstance(it, AsyncGenerator)
    first = asyncio.ensure_future(anext(it))
    deadline = time.monotonic() + 3.0
    while not first.done():
        if time.monotonic() > deadline:
            first.cancel()
            await it.aclose()
            pytest.fail("subscription never became ready")
        store.publish(channel, READY)
        await asyncio.wait({first}, timeout=0.02)
    assert first.result() == READY
    return it


async def _recv(it: AsyncGenerator[bytes, None], timeout: float = 2.0) -> bytes:
    while True:
        message = await asyncio.wait_for(anext(it), timeout)
        if message != READY:
            return message


async def _ends(it: AsyncGenerator[bytes, None], timeout: float = 2.0) -> bool:
    """True when the iterator finishes (after any queued messages) within ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            async for _ in it:
                pass
    except TimeoutError:
        return False
    return True


async def test_subscriber_receives_messages_published_after_subscribing(store: EphemeralStore) -> None:
    store.publish("ch", b"early")  # nobody listening: lost, never replayed
    async with contextlib.aclosing(await _subscribed(store, "ch")) as it:
        store.publish("ch", b"m1")
        store.publish("ch", b"m2")
        assert await _recv(it) == b"m1"
        assert await _recv(it) == b"m2"


async def test_publish_from_other_threads(store: EphemeralStore) -> None:
    async with contextlib.aclosing(await _subscribed(store, "ch")) as it:
        t = threading.Thread(target=store.publish, args=("ch", b"from-thread"))
        t.start()
        t.join(5)
        assert await _recv(it) == b"from-thread"
        await asyncio.to_thread(store.publish, "ch", b"from-pool")
        assert await _recv(it) == b"from-pool"


async def test_two_subscribers_both_receive(store: EphemeralStore) -> None:
    async with (
        contextlib.aclosing(await _subscribed(store, "ch")) as a,
        contextlib.aclosing(await _subscribed(store, "ch")) as b,
    ):
        await asyncio.to_thread(store.publish, "ch", b"fan-out")
        assert await _recv(a) == b"fan-out"
        assert await _recv(b) == b"fan-out"


async def test_channels_are_isolated(store: EphemeralStore) -> None:
    async with contextlib.aclosing(await _subscribed(store, "a")) as it:
        store.publish("b", b"for-b")
        store.publish("a", b"for-a")
        assert await _recv(it) == b"for-a"


async def test_closing_the_iterator_unsubscribes(h: Harness) -> None:
    it = await _subscribed(h.store, "ch")
    assert h.subscriber_count("ch") == 1
    await it.aclose()
    deadline = time.monotonic() + 2.0
    while h.subscriber_count("ch") and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert h.subscriber_count("ch") == 0
    h.store.publish("ch", b"after-close")  # no receiver, no error


async def test_store_close_ends_subscriptions(store: EphemeralStore) -> None:
    it = await _subscribed(store, "ch")
    store.close()
    assert await _ends(it)


# -- MemoryStore specifics -------------------------------------------------


async def test_memory_slow_subscriber_is_closed_after_its_queue_fills() -> None:
    store = MemoryStore(FrozenClock(0.0), max_queued=3)
    it = store.subscribe("ch")
    first = asyncio.ensure_future(anext(it))
    await asyncio.sleep(0)  # the subscription registers when iteration starts
    for n in range(1, 6):
        store.publish("ch", str(n).encode())
    assert await first == b"1"
    rest = [m async for m in it]
    assert rest == [b"2", b"3"]  # what was queued is delivered, then the stream ends
    assert store._subs == {}


def test_memory_sweep_bounds_memory_without_access() -> None:
    clock = FrozenClock(0.0)
    store = MemoryStore(clock)
    for n in range(500):
        store.put(f"old-{n}", b"v", 1.0)
    clock.advance(120)  # past expiry and past the sweep interval
    store.put("new", b"v", 1.0)  # any write may sweep
    assert set(store._data) == {"new"}


def test_memory_sweep_on_growth() -> None:
    clock = FrozenClock(0.0)
    store = MemoryStore(clock)
    for n in range(1000):
        store.put(f"old-{n}", b"v", 1.0)
    clock.advance(2)  # expired, but the interval sweep is not due yet
    for n in range(100):
        store.put(f"new-{n}", b"v", 10.0)
    assert len(store._data) < 1000


# -- RedisStore specifics --------------------------------------------------


def test_redis_prefix_isolation() -> None:
    with _prefixed_redis() as a, _prefixed_redis() as b:
        a.put("k", b"from-a", LONG)
        assert b.get("k") is None
        b.put("k", b"from-b", LONG)
        assert a.get("k") == b"from-a"
        assert b.take("k") == b"from-b"
        assert a.get("k") == b"from-a"
        assert a.incr("n", LONG) == 1
        assert b.incr("n", LONG) == 1
        with contextlib.closing(redis.Redis.from_url(REDIS_URL)) as raw:
            assert raw.get(f"{a._prefix}k") == b"from-a"


async def test_redis_prefix_isolates_channels() -> None:
    with _prefixed_redis() as a, _prefixed_redis() as b:
        async with contextlib.aclosing(await _subscribed(b, "ch")) as it:
            a.publish("ch", b"from-a")
            b.publish("ch", b"from-b")
            assert await _recv(it) == b"from-b"


async def test_redis_subscription_survives_a_dropped_connection() -> None:
    name = f"idptest-{uuid.uuid4().hex}"
    with _prefixed_redis(f"{REDIS_URL}?client_name={name}") as store:
        async with contextlib.aclosing(await _subscribed(store, "ch")) as it:
            with contextlib.closing(redis.Redis.from_url(REDIS_URL)) as raw:
                ids = [c["id"] for c in raw.client_list(_type="pubsub") if c.get("name") == name]
                assert len(ids) == 1
                raw.client_kill_filter(_id=ids[0])
            # Publish until the reconnected subscription hears us again.
            got = asyncio.ensure_future(_recv(it, timeout=3.0))
            deadline = time.monotonic() + 3.0
            while not got.done() and time.monotonic() < deadline:
                store.publish("ch", b"after-reconnect")
                await asyncio.wait({got}, timeout=0.02)
            assert await got == b"after-reconnect"


DEAD_OPS: dict[str, Callable[[RedisStore], object]] = {
    "put": lambda s: s.put("secret-key", b"secret-value", 1),
    "put_if_absent": lambda s: s.put_if_absent("secret-key", b"secret-value", 1),
    "get": lambda s: s.get("secret-key"),
    "take": lambda s: s.take("secret-key"),
    "delete": lambda s: s.delete("secret-key"),
    "incr": lambda s: s.incr("secret-key", 1),
    "reserve": lambda s: s.reserve("secret-key", 5, 1),
    "release": lambda s: s.release("secret-key"),
    "ttl": lambda s: s.ttl("secret-key"),
    "publish": lambda s: s.publish("secret-key", b"secret-value"),
}


@pytest.fixture
def dead() -> Iterator[RedisStore]:
    store = RedisStore(DEAD_URL)
    try:
        yield store
    finally:
        store.close()


@pytest.mark.parametrize("op", list(DEAD_OPS))
def test_redis_unreachable_raises_store_unavailable(dead: RedisStore, op: str) -> None:
    with pytest.raises(StoreUnavailable) as info:
        DEAD_OPS[op](dead)
    assert "secret" not in str(info.value)


def test_redis_unreachable_ping_is_false(dead: RedisStore) -> None:
    assert dead.ping() is False
