"""The SQL session and user stores (Core statements, autocommit on PostgreSQL) on both backends."""

from __future__ import annotations

from dataclasses import replace

from idp.sessions.store import LoginSession
from idp.store.sessions_repo import SqlSessionStore
from idp.store.users_repo import SqlUserStore


def session(user_id: str, sid: str = "sid-1", **kw: object) -> LoginSession:
    values: dict = dict(
        sid=sid, user_id=user_id, auth_time=1000.5, amr=("pwd", "otp"), csrf_secret=b"\x00\xff" * 16,
        created_at=1000.0, last_seen_at=1000.5, idle_expires_at=2000.0, absolute_expires_at=9000.0,
        user_agent="UA/1.0", ip="10.0.0.1",
    )  # fmt: skip
    return LoginSession(**(values | kw))


def test_session_records_round_trip(container):
    alice = container.directory.create("alice", "correct horse battery")
    store = SqlSessionStore(container.sessions)
    first, second = b"\x01" * 32, b"\x02" * 32
    store.insert(first, session(alice.id))
    assert store.get(first) == session(alice.id)  # every field, amr as a tuple, bytes as bytes
    assert store.get(second) is None
    assert store.get_by_sid("sid-1") == session(alice.id)
    assert store.get_by_sid("nope") is None

    moved = replace(session(alice.id), last_seen_at=1500.0, csrf_secret=b"\x07" * 32)
    assert store.update("sid-1", moved, new_digest=second) is True
    assert store.get(first) is None  # the old cookie stops working in the same statement
    assert store.get(second) == moved
    assert store.update("nope", moved) is False

    store.insert(b"\x03" * 32, session(alice.id, sid="sid-2"))
    assert sorted(s.sid for s in store.list_for_user(alice.id)) == ["sid-1", "sid-2"]
    assert store.delete([]) == []
    ended = store.delete(["sid-1", "sid-2", "nope"])
    assert sorted(s.sid for s in ended) == ["sid-1", "sid-2"]
    assert ended[0].user_id == alice.id and ended[0].amr == ("pwd", "otp")
    assert store.list_for_user(alice.id) == []


def test_user_lookups(container):
    alice = container.directory.create("alice", "correct horse battery", email="a@example.com", name="Alice")
    store = SqlUserStore(container.sessions)
    assert store.by_username("alice") == alice
    assert store.get(alice.id) == alice
    assert store.by_username("Alice") is None
    assert store.get("missing") is None
    assert store.by_username("al\x00ice") is None  # PostgreSQL refuses NUL: no query, no 500
    assert store.get("x\x00") is None
    store.save(replace(alice, disabled=True))
    assert store.by_username("alice").disabled is True
