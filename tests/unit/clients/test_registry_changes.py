"""The client registry's cache: what invalidates it, and a change returning only once every worker has it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest

from idp.clients import registry as registry_module
from idp.clients.model import Client
from idp.clients.registry import CHANNEL, ClientRegistry, parse_change
from tests.unit.clients.fakes import MemoryClients, registry_over


class Bus:
    """Stands in for Redis: ``receivers`` workers get each message; their acks arrive after ``late`` polls."""

    def __init__(self, receivers: int, late: int) -> None:
        self.receivers, self.late = receivers, late
        self.published: list[tuple[str, bytes]] = []
        self.polls = 0

    def publish(self, channel: str, message: bytes) -> int:
        self.published.append((channel, message))
        return self.receivers

    def incr(self, key: str, window: float) -> int:
        raise AssertionError("the writer never acknowledges")

    def get(self, key: str) -> bytes | None:
        self.polls += 1
        return str(self.receivers).encode() if self.polls > self.late else None


@pytest.fixture
def store() -> MemoryClients:
    return MemoryClients()


def registry(store: MemoryClients, **kw: object) -> ClientRegistry:
    return registry_over(store, **kw)


def service(reg: ClientRegistry) -> Client:
    client, _ = reg.create(name="Billing", kind="service", scope="api:read")
    return client


def test_a_change_of_the_stores_counter_drops_every_cached_client(store: MemoryClients) -> None:
    counter = [1]
    reg = registry(store, version=lambda: counter[0])
    client = service(reg)
    assert reg.get(client.client_id) == client
    reads = store.reads
    store.rows[client.client_id] = replace(client, disabled=True)  # another process changed it...
    assert reg.get(client.client_id) == client  # ...unseen while the counter stands (the cache answers)
    counter[0] += 1  # ...and bumped the counter with it
    assert reg.get_active(client.client_id) is None
    assert store.reads == reads + 1
    assert reg.cached(client.client_id) is not None and reg.cached(client.client_id).disabled  # type: ignore[union-attr]


def test_an_unreadable_counter_counts_as_changed(store: MemoryClients) -> None:
    def broken() -> int:
        raise OSError("database is locked")

    reg = registry(store, version=broken)
    client = service(reg)
    reg.get(client.client_id)
    reads = store.reads
    reg.get(client.client_id)
    assert store.reads == reads + 1  # read again from the store, which decides


def test_an_unreadable_counter_sends_that_lookup_to_the_store_but_keeps_the_cache(store: MemoryClients) -> None:
    counter: list[int | Exception] = [1]

    def version() -> int:
        if isinstance(counter[0], Exception):
            raise counter[0]
        return counter[0]

    reg = registry(store, version=version)
    one, two = service(reg), service(reg)
    reg.get(one.client_id), reg.get(two.client_id)
    reads = store.reads
    counter[0] = OSError("disk I/O error")
    store.rows[one.client_id] = replace(one, disabled=True)  # changed meanwhile by another process...
    assert reg.get_active(one.client_id) is None  # ...and not hidden by the cached copy while unreadable
    assert reg.cached(two.client_id) is None and reg.peek_cors_origins() is None  # nothing answered unchecked
    assert store.reads == reads + 1
    counter[0] = 1  # readable again, unchanged: the rest of the cache still answers
    assert reg.get(two.client_id) == two and store.reads == reads + 1
    counter[0] = OSError("disk I/O error")
    store.rows[two.client_id] = replace(two, disabled=True)
    counter[0] = 2  # a change counted while unreadable shows on the next good read
    assert reg.get_active(two.client_id) is None


def test_a_lookup_that_raced_a_change_does_not_fill_the_cache(store: MemoryClients) -> None:
    reg = registry(store)
    client = service(reg)
    disabled = replace(client, disabled=True)

    def changed_meanwhile() -> None:
        store.rows[client.client_id] = disabled
        reg.invalidate(client.client_id)  # heard from the channel while the old row was in flight

    reg.invalidate(client.client_id)
    store.during_read.append(changed_meanwhile)
    assert reg.get(client.client_id) == client  # this lookup read the old row...
    assert reg.get(client.client_id) == disabled  # ...but did not keep it


def test_a_change_waits_for_every_worker_the_channel_reached(store: MemoryClients) -> None:
    bus = Bus(receivers=2, late=3)
    reg = registry(store, bus=bus)
    client = service(reg)
    bus.published.clear()
    bus.polls = 0
    reg.update(client.client_id, disabled=True)
    assert bus.polls == 4  # returned only once both acknowledged
    [(channel, message)] = bus.published
    assert channel == CHANNEL
    assert parse_change(message) is not None and parse_change(message)[0] == client.client_id  # type: ignore[index]


def test_a_worker_that_never_acknowledges_delays_a_change_by_the_timeout_only(
    store: MemoryClients, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(registry_module, "ACK_TIMEOUT", 0.0)
    bus = Bus(receivers=2, late=10**9)
    reg = registry(store, bus=bus)
    with caplog.at_level(logging.WARNING, "idp.clients"):
        service(reg)
    assert bus.polls == 1 and "0 of 2 workers acknowledged" in caplog.text


def test_nobody_listening_or_the_event_loop_thread_does_not_wait(store: MemoryClients) -> None:
    silent = Bus(receivers=0, late=0)
    service(registry(store, bus=silent))
    assert silent.polls == 0
    loud = Bus(receivers=1, late=10**9)

    async def on_the_loop() -> None:
        service(registry(store, bus=loud))  # its own acknowledgement needs this very loop

    asyncio.run(on_the_loop())
    assert loud.polls == 0 and len(loud.published) == 1


@pytest.mark.parametrize("message", [b"", b"not json", b'{"client_id": "c1"}', b'{"client_id": 1, "ack": "x"}'])
def test_other_messages_are_not_changes(message: bytes) -> None:
    assert parse_change(message) is None


def test_the_own_followers_answer_is_not_awaited_while_its_loop_is_not_running(store: MemoryClients) -> None:
    bus = Bus(receivers=2, late=10**9)
    reg = registry(store, bus=bus)
    loop = asyncio.new_event_loop()
    try:
        reg.follower_loop = loop  # e.g. a sync caller in the process whose loop is blocked in it
        bus.receivers = 1  # only this process's own follower heard it
        service(reg)
        assert bus.polls == 0
    finally:
        loop.close()
