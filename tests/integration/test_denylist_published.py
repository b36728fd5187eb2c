"""Another process's published change is applied from its signed SET, never on trust (the versions before one
that are not here yet are read from SQL: test_denylist_gap.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from idp.clock import FrozenClock
from idp.config import Settings
from idp.crypto import b64url, b64url_decode
from idp.denylist.entries import DenyChange
from idp.services import Services, build_services


@pytest.fixture
def sql_reads() -> list[int]:
    return []


@pytest.fixture
def other(container: Services, settings: Settings, clock: FrozenClock, sql_reads: list[int]) -> Iterator[Services]:
    """A second instance on the same database, its snapshot loaded, counting its SQL reads of changes."""
    container.keyring.tick()  # signing keys, as at start: SETs are signed
    c = build_services(settings, clock=clock)
    c.denylist.is_denied({"sub": "nobody", "iat": 0})  # loads the snapshot
    reads = sql_reads
    store = c.denylist._store
    real = store.changes_since

    def counted(version: int, now: float, limit: int):  # type: ignore[no-untyped-def]
        reads.append(version)
        return real(version, now, limit)

    store.changes_since = counted  # type: ignore[method-assign]
    try:
        yield c
    finally:
        c.close()


def published(container: Services, kind: str, value: str) -> tuple[DenyChange, str]:
    entry = container.denylist.deny(kind, value, reason="test", actor="test")
    change = DenyChange(entry.id, entry=entry)
    return change, container.denylist.signed(change)


def test_the_next_version_is_applied_from_the_set_without_sql(
    container: Services, other: Services, sql_reads: list[int]
) -> None:
    heard: list[list[DenyChange] | None] = []
    other.denylist.listeners.append(heard.append)
    change, token = published(container, "subject", "u1")
    assert other.denylist.apply_published_batch([token])
    assert other.denylist._set.is_denied({"sub": "u1", "iat": 0})
    assert other.denylist.version == change.version
    assert sql_reads == []
    assert heard == [[DenyChange(change.version, entry=change.entry)]]  # the change feed hears it once
    assert other.denylist.signed(change) == token  # and streams the same SET, not a new signature


def test_a_replay_changes_nothing(container: Services, other: Services) -> None:
    _, token = published(container, "subject", "u1")
    assert other.denylist.apply_published_batch([token])
    heard: list[object] = []
    other.denylist.listeners.append(heard.append)
    assert other.denylist.apply_published_batch([token])  # already held
    assert heard == []


def test_a_forged_or_tampered_set_adds_nothing(container: Services, other: Services) -> None:
    _, token = published(container, "subject", "u1")
    head, body, sig = token.split(".")
    forged_body = b64url(b64url_decode(body).replace(b'"u1"', b'"u9"'))
    assert not other.denylist.apply_published_batch([f"{head}.{forged_body}.{sig}"])
    assert not other.denylist.apply_published_batch([f"{head}.{body}."])  # unsigned
    assert not other.denylist.apply_published_batch(["not a token"])
    assert not other.denylist._set.is_denied({"sub": "u9", "iat": 0})
    assert not other.denylist._set.is_denied({"sub": "u1", "iat": 0})


def test_a_batch_goes_out_as_one_message_a_set_per_line_applied_in_order(
    container: Services, other: Services, sql_reads: list[int]
) -> None:
    from idp.denylist.feed import DenyFeed

    sent: list[tuple[str, bytes]] = []

    class Recorder:
        def publish(self, channel: str, message: bytes) -> int:
            sent.append((channel, message))
            return 1

    container.denylist._publisher = Recorder()
    now = container.clock.now()
    entries = container.denylist.deny_many(
        [("jti", "a1", now + 60), ("jti", "a2", now + 60)], reason="test", actor="test"
    )
    assert len(sent) == 1  # one publish for the batch
    lines = sent[0][1].decode().split("\n")
    assert lines == [container.denylist.signed(DenyChange(e.id, entry=e)) for e in entries]
    DenyFeed._catch_up(type("Feed", (), {"_dl": other.denylist})(), sent[0][1].decode())  # type: ignore[arg-type]
    assert other.denylist.version == entries[-1].id
    assert all(other.denylist._set.is_denied({"jti": j}) for j in ("a1", "a2"))
    assert sql_reads == []  # applied from the SETs, no SQL read
