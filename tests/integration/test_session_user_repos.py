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
    assert store.update(first, moved, new_digest=second) is True
    assert store.get(first) is None  # the old cookie stops working in the same statement
    assert store.get(second) == moved
    assert store.update(first, moved) is False  # that cookie was rotated: nothing written

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


def test_a_slide_writes_only_the_sliding_columns_of_the_current_digest(container):
    alice = container.directory.create("alice", "correct horse battery")
    store = SqlSessionStore(container.sessions)
    old, new = b"\x01" * 32, b"\x02" * 32
    store.insert(old, session(alice.id))
    assert store.slide(old, 1600.0, 2600.0) is True
    assert store.get(old) == replace(session(alice.id), last_seen_at=1600.0, idle_expires_at=2600.0)
    signed_in_again = replace(session(alice.id), auth_time=1700.0, amr=("pwd", "otp"), csrf_secret=b"\x09" * 32)
    assert store.update(old, signed_in_again, new_digest=new) is True
    assert store.slide(old, 1800.0, 2800.0) is False  # a stale request's slide: that cookie was rotated
    assert store.get(new) == signed_in_again


def test_a_stale_slide_cannot_undo_a_concurrent_sign_in(container, monkeypatch):
    """The request that read the session slides after the same browser signed in again (SQL, both backends)."""
    sessions = container.login_sessions
    alice = container.directory.create("alice", "correct horse battery")
    cookie, first = sessions.login(alice.id)
    container.clock.advance(3600)
    store = sessions._store
    original, again = store.get, {}

    def get(digest):
        record = original(digest)
        if not again:
            again["started"] = True
            again["cookie"], again["session"] = sessions.login(alice.id, amr=("pwd", "otp"), previous_cookie=cookie)
        return record

    monkeypatch.setattr(store, "get", get)
    assert sessions.current(cookie).csrf_secret == first.csrf_secret
    monkeypatch.setattr(store, "get", original)
    assert sessions.current(again["cookie"], slide=False) == again["session"]
    assert sessions.current(cookie) is None
