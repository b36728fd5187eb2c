"""A process a few versions behind a change it holds reads only the versions in between, and misses none."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import idp.denylist.service as service_mod
from idp.clock import FrozenClock
from idp.config import Settings
from idp.denylist.entries import DenyChange
from idp.services import Services, build_services


class Reads:
    def __init__(self) -> None:
        self.between: list[tuple[int, int]] = []
        self.since: list[int] = []


@pytest.fixture
def reads() -> Reads:
    return Reads()


@pytest.fixture
def other(container: Services, settings: Settings, clock: FrozenClock, reads: Reads) -> Iterator[Services]:
    """A second instance on the same database, its snapshot loaded at version 0, counting its SQL reads."""
    container.keyring.tick()  # signing keys, as at start: SETs are signed
    c = build_services(settings, clock=clock)
    c.denylist.is_denied({"sub": "nobody", "iat": 0})  # loads the snapshot
    store = c.denylist._store
    real_between, real_since = store.changes_between, store.changes_since

    def between(after: int, upto: int, now: float) -> list[DenyChange]:
        reads.between.append((after, upto))
        return real_between(after, upto, now)

    def since(version: int, now: float, limit: int) -> tuple[int, list[DenyChange]]:
        reads.since.append(version)
        return real_since(version, now, limit)

    store.changes_between = between  # type: ignore[method-assign]
    store.changes_since = since  # type: ignore[method-assign]
    try:
        yield c
    finally:
        c.close()


def denied(c: Services, sub: str) -> bool:
    return c.denylist._set.is_denied({"sub": sub, "iat": 0})


def write(c: Services, *subs: str) -> list[DenyChange]:
    return [DenyChange(e.id, entry=e) for e in (c.denylist.deny("subject", s, reason="t", actor="t") for s in subs)]


def test_the_store_reads_exactly_the_versions_between(container: Services) -> None:
    changes = write(container, "u1", "u2", "u3", "u4")
    store = container.denylist._store
    now = container.clock.now()
    got = store.changes_between(changes[0].version, changes[2].version, now)
    assert got == changes[1:3]  # (v1, v3]: v2 and v3, in order; nothing at or before v1, nothing after v3
    assert store.changes_between(changes[2].version, changes[2].version, now) == []
    assert store.changes_between(0, changes[-1].version, changes[0].entry.expires_at + 1) == []  # expired: gone
    assert store.changes_between(changes[2].version, changes[-1].version + 50, now) == changes[3:]  # what committed


def test_a_published_change_after_a_gap_brings_the_gap_with_it(
    container: Services, other: Services, reads: Reads
) -> None:
    heard: list[list[DenyChange] | None] = []
    other.denylist.listeners.append(heard.append)
    *gap, last = write(container, "u1", "u2", "u3")
    assert other.denylist.apply_published_batch([container.denylist.signed(last)])
    assert [denied(other, s) for s in ("u1", "u2", "u3")] == [True, True, True]  # no entry of the gap is missed
    assert other.denylist.version == last.version
    assert reads.between == [(0, last.version + service_mod.GAP_LIMIT)]  # one bounded read from where it is
    assert reads.since == []  # not the version-and-everything-after read
    assert heard == [[*gap, last]]  # the feed hears the gap and the change once, in order


def test_a_commit_after_a_gap_reads_only_the_gap(container: Services, other: Services, reads: Reads) -> None:
    gap = write(container, "u1", "u2")
    (mine,) = write(other, "u3")
    assert mine.version == gap[-1].version + 1
    assert [denied(other, s) for s in ("u1", "u2", "u3")] == [True, True, True]
    assert reads.between == [(0, mine.version + service_mod.GAP_LIMIT)]
    assert reads.since == []


def test_a_removal_in_the_gap_is_applied(container: Services, other: Services) -> None:
    (first,) = write(container, "u1")
    assert first.entry is not None
    container.denylist.remove(first.entry.id, actor="t", reason="mistake")
    (last,) = write(container, "u2")
    assert other.denylist.apply_published_batch([container.denylist.signed(last)])
    assert not denied(other, "u1")
    assert denied(other, "u2")


def test_a_gap_wider_than_the_limit_is_a_full_sync(
    container: Services, other: Services, reads: Reads, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_mod, "GAP_LIMIT", 1)
    *_, last = write(container, "u1", "u2", "u3")
    assert other.denylist.apply_published_batch([container.denylist.signed(last)])
    assert [denied(other, s) for s in ("u1", "u2", "u3")] == [True, True, True]
    assert reads.between == []
    assert reads.since == [0]


def test_a_change_already_held_reads_nothing(container: Services, other: Services, reads: Reads) -> None:
    changes = write(container, "u1", "u2")
    other.denylist.sync()
    reads.since.clear()
    assert other.denylist.apply_published_batch([container.denylist.signed(c) for c in changes])
    assert reads.between == [] and reads.since == []


def test_a_batch_with_a_bad_set_is_left_to_sql(container: Services, other: Services, reads: Reads) -> None:
    changes = write(container, "u1", "u2")
    tokens = [container.denylist.signed(changes[0]), "not a token"]
    assert not other.denylist.apply_published_batch(tokens)
    assert not denied(other, "u1")  # nothing applied from a batch that does not verify
    assert reads.between == []


def test_sets_of_several_messages_in_any_order_are_held_in_version_order(
    container: Services, other: Services, reads: Reads
) -> None:
    heard: list[list[DenyChange] | None] = []
    other.denylist.listeners.append(heard.append)
    c1, c2, c3, c4 = write(container, "u1", "u2", "u3", "u4")
    tokens = [container.denylist.signed(c) for c in (c4, c2)]  # v4 arrived before v2; v1 and v3 on no SET here
    assert other.denylist.apply_published_batch(tokens)
    assert [denied(other, s) for s in ("u1", "u2", "u3", "u4")] == [True, True, True, True]
    # The read for v2's gap also brings v3 (committed meanwhile, within the bound) and v4: one read in all.
    assert reads.between == [(0, c2.version + service_mod.GAP_LIMIT)]
    assert heard == [[c1, c2, c3, c4]]  # in version order, each change once
    assert reads.since == []


def test_the_feed_catches_up_with_the_messages_that_queued_meanwhile(container: Services, other: Services) -> None:
    import asyncio

    from idp.denylist.feed import DenyFeed

    feed = DenyFeed(other.denylist, other.ephemeral, heartbeat=15.0)
    c1, c2 = write(container, "u1", "u2")

    async def deliver() -> None:
        await feed._on_message(container.denylist.signed(c2).encode())
        await feed._on_message(container.denylist.signed(c1).encode())  # late, and held by then
        assert feed._draining is not None
        await feed._draining

    asyncio.run(deliver())
    assert other.denylist.version == c2.version
    assert denied(other, "u1") and denied(other, "u2")


def test_the_gap_read_takes_what_committed_after_ours_and_its_set_is_then_skipped(
    container: Services, other: Services, reads: Reads, monkeypatch: pytest.MonkeyPatch
) -> None:
    (gap,) = write(container, "u1")
    mine_entry = other.denylist._store.add_many(
        other.denylist.prepare([("subject", "u2", None)]), reason="t", actor="t", now=other.clock.now()
    )[0]
    (later,) = write(container, "u3")  # commits after ours, before we apply ours
    other.denylist.committed([mine_entry])
    assert [denied(other, s) for s in ("u1", "u2", "u3")] == [True, True, True]
    assert other.denylist.version == later.version
    verified: list[str] = []
    real = other.denylist._verify
    assert real is not None

    def counting(token: str) -> dict[str, object]:
        verified.append(token)
        return real(token)

    monkeypatch.setattr(other.denylist, "_verify", counting)
    assert other.denylist.apply_published_batch([container.denylist.signed(c) for c in (gap, later)])
    assert verified == []  # held already: no verification
    assert len(reads.between) == 1


def test_threads_behind_at_once_read_the_gap_once(container: Services, other: Services, reads: Reads) -> None:
    import threading

    _, c2, c3 = write(container, "u1", "u2", "u3")
    store = other.denylist._store
    counted = store.changes_between
    entered, release = threading.Event(), threading.Event()

    def slow(after: int, upto: int, now: float) -> list[DenyChange]:
        entered.set()
        assert release.wait(10)
        return counted(after, upto, now)

    store.changes_between = slow  # type: ignore[method-assign]
    first = threading.Thread(target=other.denylist.advance, args=([c3],))
    first.start()
    assert entered.wait(10)  # the first thread is reading the gap (v1, v2)
    second = threading.Thread(target=other.denylist.advance, args=([c2],))
    second.start()  # behind as well: it waits for that read rather than reading again
    release.set()
    first.join(10)
    second.join(10)
    assert [denied(other, s) for s in ("u1", "u2", "u3")] == [True, True, True]
    assert len(reads.between) == 1
    assert other.denylist.version == c3.version
