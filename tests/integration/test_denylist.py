"""The IdP's deny-list: durable entries, lifetimes, audit, versions, freshness across instances."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from idp.clock import FrozenClock
from idp.config import Settings
from idp.denylist.entries import DenyChange
from idp.services import Services, build_services
from idp.store.models import DenyEntryRow
from tests.integration.resource_support import feed_auth


def claims(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"sub": "u1", "client_id": "c1", "sid": "s1", "jti": "j1", "iat": 0}
    return base | kw


def test_each_kind_denies_what_it_names(container: Services, clock: FrozenClock) -> None:
    dl = container.denylist
    now = clock.now()
    old = claims(iat=now - 1)
    assert not dl.is_denied(old, "k1")
    dl.deny("jti", "j1", reason="revoked", actor="test", until=now + 300)
    assert dl.is_denied(old) and not dl.is_denied(claims(jti="j2", iat=now - 1))
    for kind, claim in (("subject", "sub"), ("session", "sid"), ("client", "client_id")):
        other = claims(jti="x", sub="u", sid="s", client_id="c", iat=now - 1)
        dl.deny(kind, "X", reason=kind, actor="test")
        assert dl.is_denied(other | {claim: "X"})
        assert not dl.is_denied(other | {claim: "X", "iat": now})  # issued after the cut-off
        assert not dl.is_denied(other)
    dl.deny("kid", "k1", reason="compromised", actor="test")
    assert dl.is_denied(claims(jti="x", sub="u", sid="s", client_id="c", iat=now), "k1")


def test_invalid_entries_are_refused(container: Services) -> None:
    for kind, value in (("user", "u1"), ("jti", ""), ("jti", "x" * 201)):
        with pytest.raises(ValueError):
            container.denylist.deny(kind, value, reason="", actor="t")
    with pytest.raises(ValueError):
        container.denylist.deny("jti", "j", reason="", actor="t", until=float("inf"))


def test_every_entry_writes_an_audit_event(container: Services) -> None:
    entry = container.denylist.deny("subject", "u42", reason="stolen phone", actor="admin:alice")
    container.denylist.remove(entry.id, actor="admin:bob", reason="found it")
    (added,) = container.audit.query(action="deny.added")
    assert added.actor == "admin:alice" and added.subject == "u42"
    assert added.detail["reason"] == "stolen phone" and added.detail["kind"] == "subject"
    assert added.detail["entry_id"] == entry.id
    (removed,) = container.audit.query(action="deny.removed")
    assert removed.actor == "admin:bob" and removed.detail["entry_id"] == entry.id
    assert removed.detail["reason"] == "found it"


def test_entries_live_only_as_long_as_a_matching_token(container: Services, clock: FrozenClock) -> None:
    s, dl = container.settings, container.denylist
    now = clock.now()
    jti = dl.deny("jti", "j1", reason="", actor="t", until=now + 100)
    subject = dl.deny("subject", "u1", reason="", actor="t")
    kid = dl.deny("kid", "k1", reason="", actor="t")
    leeway = 60  # twice the verifiers' 30 s
    assert jti.expires_at == now + 100 + leeway
    longest = max(s.access_token_ttl, s.id_token_ttl)
    assert subject.expires_at == now + longest + leeway and subject.not_before == now
    assert kid.expires_at >= now + longest + s.jwks_max_age  # also outlives every RS's cached JWKS
    clock.advance(100 + leeway)
    assert dl.purge_expired() == 1
    assert [e.id for e in dl.list()] == [subject.id, kid.id]
    assert not dl.is_denied(claims(iat=now - 1, sub="nobody"))
    clock.advance(longest)
    assert dl.purge_expired() == 1
    assert [e.id for e in dl.list()] == [kid.id]
    with container.sessions() as session:
        assert session.query(DenyEntryRow).count() == 1


def test_versions_stay_monotonic_when_the_newest_row_is_purged(container: Services, clock: FrozenClock) -> None:
    dl = container.denylist
    first = dl.deny("jti", "a", reason="", actor="t", until=clock.now())
    clock.advance(3600)
    assert dl.purge_expired() == 1
    second = dl.deny("jti", "b", reason="", actor="t", until=clock.now() + 60)
    assert second.id == first.id + 1  # not reused: a follower at `first` would miss it
    assert dl.version == second.id


def test_remove_is_a_versioned_change(container: Services, clock: FrozenClock) -> None:
    dl = container.denylist
    e = dl.deny("subject", "u1", reason="oops", actor="t")
    assert dl.is_denied(claims(iat=clock.now() - 5))
    assert dl.remove(e.id, actor="t")
    assert not dl.remove(e.id, actor="t")  # already off
    assert not dl.remove(9999, actor="t")
    assert not dl.is_denied(claims(iat=clock.now() - 5))
    assert dl.version == e.id + 1
    assert dl.list() == []
    current, changes = dl.changes_since(0)  # type: ignore[misc]
    assert current == e.id + 1
    assert [c.version for c in changes] == [e.id, e.id + 1]
    assert changes[1] == DenyChange(e.id + 1, removed=e.id)


def test_changes_since_refuses_a_version_from_the_future(container: Services) -> None:
    container.denylist.deny("jti", "a", reason="", actor="t")
    assert container.denylist.changes_since(1) == (1, [])
    assert container.denylist.changes_since(5) is None  # follower must resynchronise


def test_concurrent_writers_get_distinct_contiguous_versions(container: Services) -> None:
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for j in range(5):
                container.denylist.deny("jti", f"t{i}-{j}", reason="", actor="t")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(e.id for e in container.denylist.list()) == list(range(1, 21))
    assert container.denylist.version == 20


def test_another_instance_sees_a_change_within_the_sync_interval(
    container: Services, settings: Settings, clock: FrozenClock
) -> None:
    """No pub/sub here (the CLI in another process with the embedded store): the SQL re-check bounds staleness."""
    other = build_services(settings, clock=clock)
    try:
        assert not other.denylist.is_denied(claims(), "k9")  # loads its snapshot
        container.denylist.deny("kid", "k9", reason="", actor="t")
        deadline = time.monotonic() + settings.denylist_sync_seconds + 1.0
        while not other.denylist.is_denied(claims(), "k9"):
            assert time.monotonic() < deadline, "other instance never saw the entry"
            time.sleep(0.05)
    finally:
        other.close()


@pytest.mark.timing  # a latency bound on real time
async def test_pubsub_wakes_other_instances_at_once(
    container: Services, settings: Settings, clock: FrozenClock, app: object
) -> None:
    """Two IdP instances (apps over separate containers): a deny at one is applied at the other well under 1 s."""
    from asgi_lifespan import LifespanManager

    from idp.app import create_app

    if not settings.redis_url:
        pytest.skip("the in-process store does not cross instances (single-process by design)")
    import redis

    from idp.denylist.secevent import CHANNEL

    channel = (settings.redis_prefix or "idp:") + CHANNEL
    r = redis.Redis.from_url(settings.redis_url)

    def subscribers() -> int:
        return int(dict(r.pubsub_numsub(channel)).get(channel.encode(), 0))

    deadline = time.monotonic() + 10
    while not subscribers():  # this test's own app (the ``app`` fixture) subscribes first
        assert time.monotonic() < deadline, "the first instance never subscribed"
        await asyncio.sleep(0.01)
    before = subscribers()
    other = build_services(settings.model_copy(update={"denylist_sync_seconds": 10.0}), clock=clock)
    try:
        async with LifespanManager(create_app(services=other)):
            deadline = time.monotonic() + 10
            while subscribers() <= before:  # the other instance's subscription is in place (no fixed settle sleep)
                assert time.monotonic() < deadline, "the other instance never subscribed"
                await asyncio.sleep(0.01)
            started = time.monotonic()
            await asyncio.to_thread(container.denylist.deny, "subject", "u7", reason="", actor="t")
            while not other.denylist._set.is_denied({"sub": "u7", "iat": 0}):
                assert time.monotonic() - started < 1.0, "pub/sub did not reach the other instance"
                await asyncio.sleep(0.01)
    finally:
        other.close()
        r.close()


async def test_get_deny_list_snapshot_etag_and_304(client: httpx.AsyncClient, container: Services) -> None:
    client.auth = feed_auth(container)
    r = await client.get("/deny-list")
    assert r.status_code == 200 and r.json() == {"version": 0, "entries": []}
    assert r.headers["cache-control"] == "no-cache"
    etag = r.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    r2 = await client.get("/deny-list", headers={"if-none-match": etag})
    assert r2.status_code == 304 and r2.headers["etag"] == etag and r2.content == b""
    assert (await client.get("/deny-list", headers={"if-none-match": f"W/{etag}"})).status_code == 200
    entry = await asyncio.to_thread(container.denylist.deny, "subject", "u1", reason="stolen", actor="admin")
    r3 = await client.get("/deny-list", headers={"if-none-match": etag})
    assert r3.status_code == 200 and r3.headers["etag"] != etag
    doc = r3.json()
    assert doc["version"] == entry.id
    assert doc["entries"] == [entry.public()]
    assert "stolen" not in r3.text and "admin" not in r3.text  # operator context stays at the IdP


async def test_snapshot_drops_entries_as_they_expire(
    client: httpx.AsyncClient, container: Services, clock: FrozenClock
) -> None:
    client.auth = feed_auth(container)
    await asyncio.to_thread(container.denylist.deny, "jti", "j1", reason="", actor="t", until=clock.now() + 10)
    first = await client.get("/deny-list")
    assert len(first.json()["entries"]) == 1
    clock.advance(100)
    second = await client.get("/deny-list", headers={"if-none-match": first.headers["etag"]})
    assert second.status_code == 200 and second.json()["entries"] == []
