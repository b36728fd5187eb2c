"""Deny-list batches (a revoked grant's live access tokens): one transaction, consecutive versions, one audit
event and one published SET per entry; and grant revocation that revokes each grant exactly once."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from sqlalchemy import event, text

from idp.clock import FrozenClock
from idp.crypto import b64url
from idp.denylist.entries import DenyChange
from idp.denylist.secevent import peek_version
from idp.denylist.service import DenyList
from idp.services import Services
from idp.store.denylist_repo import SqlDenyStore
from idp.tokens.refresh import Minted
from tests.oauthkit import make_user, web_client


def _commits(container: Services) -> tuple[list[int], Callable[[], None]]:
    seen = [0]

    def bump(*_: object) -> None:
        seen[0] += 1

    event.listen(container.engine, "commit", bump)
    return seen, lambda: event.remove(container.engine, "commit", bump)


def test_a_batch_is_one_transaction_at_consecutive_versions(container: Services, clock: FrozenClock) -> None:
    dl = container.denylist
    dl.deny("jti", "before", reason="", actor="t", until=clock.now() + 60)
    start = dl.version
    commits, stop = _commits(container)
    try:
        entries = dl.deny_many(
            [("jti", "j1", clock.now() + 100), ("subject", "u1", None), ("kid", "k1", None)],
            reason="family revoked",
            actor="client:c1",
        )
    finally:
        stop()
    assert commits == [1]
    assert [e.id for e in entries] == [start + 1, start + 2, start + 3]
    assert dl.version == start + 3
    assert [(e.kind, e.value) for e in dl.list()][1:] == [("jti", "j1"), ("subject", "u1"), ("kid", "k1")]
    assert dl.is_denied({"jti": "j1"}) and dl.is_denied({"sub": "u1", "iat": clock.now() - 1})
    assert dl.is_denied({"jti": "x"}, "k1")
    added = sorted(container.audit.query(action="deny.added"), key=lambda e: e.id)[1:]
    assert [e.detail["entry_id"] for e in added] == [e.id for e in entries]  # one event per entry
    assert all(e.actor == "client:c1" and e.detail["reason"] == "family revoked" for e in added)
    assert [e.subject for e in added] == [None, "u1", None]
    assert dl.deny_many([], reason="", actor="t") == [] and dl.version == start + 3


def test_a_batch_with_one_bad_item_writes_nothing(container: Services, clock: FrozenClock) -> None:
    dl = container.denylist
    for bad in (("user", "u1", None), ("jti", "", None), ("jti", "j", float("inf"))):
        with pytest.raises(ValueError):
            dl.deny_many([("jti", "fine", clock.now() + 60), bad], reason="", actor="t")
    assert dl.list() == [] and dl.version == 0
    assert container.audit.query(action="deny.added") == []


class _Published:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    def publish(self, channel: str, message: bytes) -> None:
        self.messages.append(message)


def _fake_sign(claims: dict[str, Any]) -> str:
    """Compact-JWS shaped, unsigned: enough for what followers peek at before reading SQL."""
    return f"e30.{b64url(orjson.dumps(claims))}.sig"


def test_a_batch_is_applied_and_announced_once_per_version(container: Services, clock: FrozenClock) -> None:
    published = _Published()
    dl = DenyList(
        SqlDenyStore(container.sessions, container.audit),
        clock,
        issuer="https://idp.test",
        sign=_fake_sign,
        publisher=published,
        token_lifetime=600,
        kid_lifetime=3600,
    )
    batches: list[list[DenyChange] | None] = []
    dl.listeners.append(batches.append)
    assert dl.version == 0
    entries = dl.deny_many([("jti", "a", clock.now() + 60), ("jti", "b", clock.now() + 60)], reason="", actor="t")
    assert batches == [[DenyChange(e.id, entry=e) for e in entries]]  # one notification, in version order
    # One publish for the batch, a SET per version in it (one per line): the other workers see every change.
    assert len(published.messages) == 1
    assert [peek_version(line) for line in published.messages[0].split(b"\n")] == [1, 2]


def test_concurrent_batches_get_distinct_contiguous_versions(container: Services, clock: FrozenClock) -> None:
    errors: list[BaseException] = []
    batches: list[list[int]] = []

    def write(i: int) -> None:
        try:
            for j in range(4):
                items = [("jti", f"t{i}-{j}-{k}", clock.now() + 60) for k in range(3)]
                batches.append([e.id for e in container.denylist.deny_many(items, reason="", actor="t")])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(ids == list(range(ids[0], ids[0] + 3)) for ids in batches)  # each batch contiguous
    assert sorted(e.id for e in container.denylist.list()) == list(range(1, 49))
    assert container.denylist.version == 48


def _family_with_two_live_access_tokens(container: Services, client_id: str, user_id: str) -> tuple[str, list[str]]:
    now = container.clock.now()
    first = secrets.token_urlsafe(12)
    _, token = container.grants.start(
        client_id=client_id, user_id=user_id, sid="s1", scope="openid offline_access", audience="api",
        auth_time=now, acr=None, amr=["pwd"], code_digest=None, at_jti=first, at_exp=now + 300, with_refresh=True,
    )  # fmt: skip
    assert token
    second = secrets.token_urlsafe(12)
    response = container.grants.rotate(
        token, client_id=client_id, scope=None, mint=lambda g, s: Minted({"access_token": "x"}, second, now + 300)
    )
    return response["refresh_token"], [first, second]


def test_concurrent_revocations_of_one_token_revoke_the_family_once(container: Services) -> None:
    client, _ = web_client(container)
    user = make_user(container)
    token, jtis = _family_with_two_live_access_tokens(container, client.client_id, user.id)
    barrier = threading.Barrier(4)
    results: list[bool] = []

    def revoke() -> None:
        barrier.wait()
        results.append(container.grants.revoke_refresh_token(token, client_id=client.client_id, actor="t"))

    threads = [threading.Thread(target=revoke) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    assert len(container.audit.query(action="grant_revoked")) == 1
    assert sorted(e.value for e in container.denylist.list()) == sorted(jtis)  # each live AT denied once


def test_revoke_by_refresh_token_tells_owner_unknown_and_foreign_apart(container: Services) -> None:
    client, _ = web_client(container)
    other, _ = web_client(container, name="Other")
    user = make_user(container)
    token, jtis = _family_with_two_live_access_tokens(container, client.client_id, user.id)
    grants = container.grants
    assert grants.revoke_by_refresh_token("unknown", client_id=client.client_id, actor="t") is None
    assert grants.revoke_by_refresh_token(token, client_id=other.client_id, actor="t") == client.client_id
    assert grants.lookup(token) is not None and container.denylist.list() == []  # someone else's: untouched
    assert grants.revoke_by_refresh_token(token, client_id=client.client_id, actor="t") == client.client_id
    assert grants.lookup(token) is None
    assert sorted(e.value for e in container.denylist.list()) == sorted(jtis)
    version = container.denylist.version
    assert grants.revoke_by_refresh_token(token, client_id=client.client_id, actor="t") == client.client_id
    assert container.denylist.version == version  # already revoked: nothing new


def test_revocation_filters_combine_and_an_empty_value_still_filters(container: Services) -> None:
    client, _ = web_client(container)
    user = make_user(container)
    _family_with_two_live_access_tokens(container, client.client_id, user.id)
    assert container.grants.revoke_for_user(user.id, actor="t", reason="x", client_id="") == 0
    assert container.grants.revoke_for_user(user.id, actor="t", reason="x", client_id="other") == 0
    assert container.grants.revoke_for_session("", keep_offline=False, actor="t", reason="x") == 0
    assert container.denylist.list() == []
    assert container.grants.revoke_for_session("s1", keep_offline=True, actor="t", reason="x") == 0  # offline
    assert container.grants.revoke_for_user(user.id, actor="t", reason="x", client_id=client.client_id) == 1
    assert len(container.denylist.list()) == 2


def test_a_revoked_family_and_its_deny_list_entries_commit_together(container: Services) -> None:
    client, _ = web_client(container)
    user = make_user(container)
    token, jtis = _family_with_two_live_access_tokens(container, client.client_id, user.id)
    container.denylist.is_denied({"jti": "warm"})  # the snapshot loaded, the version row there
    container.deny_store.ensure_version_row()
    commits, stop = _commits(container)
    try:
        assert container.grants.revoke_refresh_token(token, client_id=client.client_id, actor="t")
    finally:
        stop()
    # The grant, its audit event, the entries and theirs: one transaction (PostgreSQL: one autocommit
    # statement, atomic by itself, so no COMMIT of SQLAlchemy's to count).
    assert commits == ([0] if container.engine.dialect.name == "postgresql" else [1])
    assert all(container.denylist.is_denied({"jti": j}) for j in jtis)  # applied here after the commit


def test_a_failed_deny_list_write_leaves_the_family_as_it_was(container: Services, monkeypatch) -> None:
    """Nothing half-written: a revoked grant whose live access tokens were not deny-listed would let them
    run to their exp unseen by resource servers."""
    client, _ = web_client(container)
    user = make_user(container)
    token, jtis = _family_with_two_live_access_tokens(container, client.client_id, user.id)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("deny-list write failed")

    monkeypatch.setattr(container.deny_store, "add_many_in", broken)
    container.deny_store.ensure_version_row()
    version_row = text("SELECT value FROM meta WHERE key = 'deny_list_version'")
    with container.engine.begin() as conn:  # PostgreSQL writes in one statement: take its version row away
        version = conn.execute(version_row).scalar()
        conn.execute(text("DELETE FROM meta WHERE key = 'deny_list_version'"))
    with pytest.raises(Exception, match="deny-list write failed|null value|NOT NULL"):
        container.grants.revoke_refresh_token(token, client_id=client.client_id, actor="t")
    assert container.grants.lookup(token) is not None  # the revocation rolled back with it
    assert container.audit.query(action="grant_revoked") == []
    monkeypatch.undo()
    with container.engine.begin() as conn:
        conn.execute(text("INSERT INTO meta (key, value) VALUES ('deny_list_version', :v)"), {"v": version})
    assert container.grants.revoke_refresh_token(token, client_id=client.client_id, actor="t")
    assert sorted(e.value for e in container.denylist.list()) == sorted(jtis)
