"""LoginSessions core: ids, rotation, lifetimes, ending (no SQL, no HTTP)."""

from __future__ import annotations

import math
import os
from dataclasses import replace

import pytest

from idp.clock import FrozenClock
from idp.crypto import Digester
from idp.events import Events, SessionsEnded
from idp.sessions.store import SLIDE_EVERY, LoginSessions
from tests.unit.sessions.fakes import FakeUsers, MemorySessionStore

DAY = 86_400.0


@pytest.fixture
def clock():
    return FrozenClock(1_800_000_000.0)


@pytest.fixture
def ended():
    return []


@pytest.fixture
def store():
    return MemorySessionStore()


@pytest.fixture
def users():
    return FakeUsers("alice", "bob")


@pytest.fixture
def sessions(store, clock, users, ended):
    events = Events()
    events.subscribe(SessionsEnded, lambda e: ended.extend((s.sid, e.reason) for s in e.sessions))
    return LoginSessions(
        store,
        Digester(os.urandom(32)),
        clock,
        users,
        idle_ttl=30 * DAY,
        absolute_ttl=90 * DAY,
        events=events,
    )


def test_cookie_values_are_high_entropy_and_unique(sessions):
    values = {sessions.login("alice")[0] for _ in range(200)}
    assert len(values) == 200
    for v in values:
        # token_urlsafe(32): 43 chars of a 64-symbol alphabet = 256 bits (ASVS V7.2.3 asks >= 128)
        assert len(v) * math.log2(64) >= 128


def test_store_never_sees_the_cookie_value(sessions, store):
    cookie, session = sessions.login("alice")
    [(digest, stored)] = store.rows.items()
    assert digest != cookie.encode() and len(digest) == 32
    assert cookie not in repr(stored)


def test_login_rotates_the_id_and_destroys_the_old_one(sessions, store):
    old, first = sessions.login("alice")
    new, second = sessions.login("alice", previous_cookie=old)
    assert new != old
    assert sessions.from_cookie(old) is None  # ASVS V7.2.4
    assert sessions.from_cookie(new).sid == first.sid  # re-authentication keeps the public sid
    assert second.csrf_secret != first.csrf_secret
    assert len(store.rows) == 1


def test_login_as_another_user_ends_the_previous_session(sessions, ended):
    old, first = sessions.login("alice")
    new, second = sessions.login("bob", previous_cookie=old)
    assert second.sid != first.sid
    assert sessions.from_cookie(old) is None
    assert ended == [(first.sid, "another user signed in")]


def test_rotate_on_privilege_change(sessions):
    old, first = sessions.login("alice")
    new, second = sessions.rotate(old)
    assert new != old
    assert sessions.from_cookie(old) is None
    assert sessions.current(new).sid == first.sid
    assert second.csrf_secret != first.csrf_secret


def test_idle_expiry_slides_and_is_checked_against_the_clock(sessions, clock, ended):
    cookie, s = sessions.login("alice")
    clock.advance(29 * DAY)
    assert sessions.from_cookie(cookie) is not None
    clock.advance(29 * DAY)
    assert sessions.from_cookie(cookie) is not None
    clock.advance(30 * DAY)
    assert sessions.from_cookie(cookie) is None
    assert ended == [(s.sid, "expired")]


def test_absolute_expiry_caps_sliding(sessions, clock):
    cookie, _ = sessions.login("alice")
    for _ in range(89):
        clock.advance(DAY)
        assert sessions.from_cookie(cookie) is not None
    clock.advance(DAY)
    assert sessions.from_cookie(cookie) is None


def test_idle_deadline_never_passes_the_absolute_one(sessions, clock):
    cookie, _ = sessions.login("alice")
    clock.advance(80 * DAY)
    # keep it alive on the way there
    s = sessions.current(cookie)
    assert s is None or s.idle_expires_at <= s.absolute_expires_at


def test_sliding_writes_at_most_once_a_minute(sessions, clock, store):
    cookie, s = sessions.login("alice")
    clock.advance(SLIDE_EVERY - 1)
    assert sessions.current(cookie).last_seen_at == s.last_seen_at
    clock.advance(1)
    assert sessions.current(cookie).last_seen_at == clock.now()


def sign_in_again_during_the_next_read(sessions, store, cookie, **kw):
    """The next ``store.get`` returns its record, then the same browser signs in again (a concurrent request)."""
    original, fired, out = store.get, [], {}

    def get(digest):
        record = original(digest)
        if not fired:
            fired.append(True)
            out["cookie"], out["session"] = sessions.login("alice", previous_cookie=cookie, **kw)
        return record

    store.get = get
    return out


def test_a_slide_never_writes_back_what_a_concurrent_sign_in_changed(sessions, clock, store):
    cookie, first = sessions.login("alice", amr=("pwd",))
    clock.advance(SLIDE_EVERY + 1)
    again = sign_in_again_during_the_next_read(sessions, store, cookie, amr=("pwd", "otp"))
    stale = sessions.current(cookie)  # read before the sign-in, slides after it
    assert stale is not None and stale.csrf_secret == first.csrf_secret
    fresh = sessions.current(again["cookie"], slide=False)
    assert fresh == again["session"]  # the sign-in's CSRF secret, auth_time and amr survive the slide
    assert fresh.amr == ("pwd", "otp", "mfa") and fresh.csrf_secret != first.csrf_secret
    assert sessions.current(cookie) is None  # the old cookie stays dead


def test_a_slide_moves_only_the_sliding_columns(sessions, clock, store):
    cookie, first = sessions.login("alice")
    clock.advance(SLIDE_EVERY + 1)
    slid = sessions.current(cookie)
    assert slid == replace(first, last_seen_at=clock.now(), idle_expires_at=clock.now() + 30 * DAY)
    assert [s for s in store.rows.values()] == [slid]


def test_a_rotation_loses_to_a_concurrent_sign_in(sessions, store):
    cookie, _ = sessions.login("alice")
    again = sign_in_again_during_the_next_read(sessions, store, cookie)
    assert sessions.rotate(cookie) is None  # the record moved on: nothing overwritten
    assert sessions.current(again["cookie"], slide=False) == again["session"]


def test_disabled_user_ends_the_session(sessions, users, ended):
    cookie, s = sessions.login("alice")
    users.users["alice"].disabled = True
    assert sessions.from_cookie(cookie) is None
    assert ended == [(s.sid, "user disabled")]


def test_end_deletes_the_record(sessions, store, ended):
    cookie, s = sessions.login("alice")
    assert sessions.end(cookie, actor="alice", reason="logout").sid == s.sid
    assert store.rows == {}
    assert not sessions.is_active(s.sid)
    assert ended == [(s.sid, "logout")]
    assert sessions.end(cookie, actor="alice", reason="logout") is None


def test_end_sid_respects_the_owner(sessions):
    _, alice = sessions.login("alice")
    _, bob = sessions.login("bob")
    assert not sessions.end_sid(bob.sid, user_id="alice", actor="alice", reason="x")
    assert sessions.is_active(bob.sid)
    assert sessions.end_sid(alice.sid, user_id="alice", actor="alice", reason="x")
    assert not sessions.is_active(alice.sid)


def test_end_all_for_user_with_exception(sessions):
    _, a1 = sessions.login("alice")
    _, a2 = sessions.login("alice")
    _, a3 = sessions.login("alice")
    _, b1 = sessions.login("bob")
    ended = sessions.end_all_for_user("alice", actor="alice", reason="pw", except_sid=a2.sid)
    assert {s.sid for s in ended} == {a1.sid, a3.sid}
    assert [s.sid for s in sessions.list_for_user("alice")] == [a2.sid]
    assert sessions.is_active(b1.sid)


def test_list_for_user_orders_by_last_seen_and_drops_expired(sessions, clock):
    c1, s1 = sessions.login("alice")
    clock.advance(10 * DAY)
    c2, s2 = sessions.login("alice")
    assert [s.sid for s in sessions.list_for_user("alice")] == [s2.sid, s1.sid]
    clock.advance(25 * DAY)
    assert [s.sid for s in sessions.list_for_user("alice")] == [s2.sid]


def test_user_agent_and_ip_are_bounded(sessions):
    _, s = sessions.login("alice", user_agent="A" * 5000, ip="1" * 500)
    assert len(s.user_agent) == 300 and len(s.ip) == 64


def test_two_simultaneous_sign_ins_from_one_browser_both_get_a_working_session(sessions, store):
    cookie, first = sessions.login("alice")
    other = sign_in_again_during_the_next_read(sessions, store, cookie)
    mine, session = sessions.login("alice", previous_cookie=cookie)  # the other one rotated the cookie first
    assert sessions.current(other["cookie"], slide=False) == other["session"]  # not overwritten
    assert sessions.current(mine, slide=False) == session and session.sid != first.sid
    assert sessions.current(cookie) is None


def test_ended_sessions_are_published_once_with_actor_and_reason(store, clock, users) -> None:
    events, seen = Events(), []
    events.subscribe(SessionsEnded, seen.append)
    sessions = LoginSessions(
        store, Digester(os.urandom(32)), clock, users, idle_ttl=DAY, absolute_ttl=DAY, events=events
    )
    _, first = sessions.login("alice")
    _, second = sessions.login("alice")
    ended = sessions.end_all_for_user("alice", actor="ops", reason="sign out everywhere")
    assert seen == [SessionsEnded(tuple(s.info() for s in ended), actor="ops", reason="sign out everywhere")]
    assert {s.sid for s in seen[0].sessions} == {first.sid, second.sid}
