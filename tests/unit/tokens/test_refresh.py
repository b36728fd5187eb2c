"""Refresh families in the core, over an in-memory store: rotation, grace, reuse, revocation filters."""

from __future__ import annotations

import os

import pytest

from idp.clock import FrozenClock
from idp.crypto import Digester, Sealer
from idp.errors import InvalidGrant, InvalidScope
from idp.tokens.refresh import Minted, RefreshTokens, narrow_scope
from tests.oauthkit import RecordingDenyList
from tests.unit.tokens.fakes import MemoryGrantStore


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(1_700_000_000.0)


@pytest.fixture
def deny() -> RecordingDenyList:
    return RecordingDenyList()


@pytest.fixture
def store() -> MemoryGrantStore:
    return MemoryGrantStore()


@pytest.fixture
def grants(store: MemoryGrantStore, clock: FrozenClock, deny: RecordingDenyList) -> RefreshTokens:
    kek = os.urandom(32)
    return RefreshTokens(store, Digester(kek), Sealer(kek), clock, idle_ttl=100, absolute_ttl=1000,
                         grace_seconds=5, grace_max_uses=1, denylist=deny)  # fmt: skip


def _start(grants: RefreshTokens, scope: str = "openid offline_access", sid: str = "s1", user: str = "u") -> str:
    _, token = grants.start(client_id="c", user_id=user, sid=sid, scope=scope, audience="a", auth_time=1.0,
                            acr=None, amr=[], code_digest=None, at_jti="jti-0", at_exp=1_700_000_600,
                            with_refresh=True)  # fmt: skip
    assert token
    return token


counter = iter(range(1, 10_000))


def mint(grant, scope):  # type: ignore[no-untyped-def]
    n = next(counter)
    return Minted(response={"access_token": f"at{n}", "scope": scope}, at_jti=f"jti-{n}", at_exp=1_700_000_600)


def test_rotate_then_old_token_is_reuse(grants: RefreshTokens, clock: FrozenClock, deny: RecordingDenyList,
                                        store: MemoryGrantStore) -> None:  # fmt: skip
    t0 = _start(grants)
    r1 = grants.rotate(t0, client_id="c", scope=None, mint=mint)
    assert r1["refresh_token"] != t0
    clock.advance(6)
    with pytest.raises(InvalidGrant, match="revoked"):
        grants.rotate(t0, client_id="c", scope=None, mint=mint)
    with pytest.raises(InvalidGrant):
        grants.rotate(r1["refresh_token"], client_id="c", scope=None, mint=mint)
    assert {v for _, v, _, _ in deny.calls} == {"jti-0", r1_jti(store, r1)}
    assert store.audits[0][0] == "refresh_token_reuse"


def r1_jti(store: MemoryGrantStore, response: dict) -> str:
    return next(t.at_jti for t in store.tokens.values() if t.rotated_at is None and t.at_jti != "jti-0") or ""


def test_grace_returns_same_successor_then_counts(grants: RefreshTokens, clock: FrozenClock) -> None:
    t0 = _start(grants)
    r1 = grants.rotate(t0, client_id="c", scope=None, mint=mint)
    clock.advance(2)
    assert grants.rotate(t0, client_id="c", scope=None, mint=mint) == r1
    with pytest.raises(InvalidGrant):  # grace_max_uses=1
        grants.rotate(t0, client_id="c", scope=None, mint=mint)


def test_client_binding_does_not_burn_the_token(grants: RefreshTokens) -> None:
    t0 = _start(grants)
    with pytest.raises(InvalidGrant, match="another client"):
        grants.rotate(t0, client_id="other", scope=None, mint=mint)
    assert grants.rotate(t0, client_id="c", scope=None, mint=mint)


def test_expiry(grants: RefreshTokens, clock: FrozenClock) -> None:
    t0 = _start(grants)
    clock.advance(101)
    with pytest.raises(InvalidGrant, match="expired"):
        grants.rotate(t0, client_id="c", scope=None, mint=mint)


def test_scope_narrowing() -> None:
    assert narrow_scope("a b c", None) == "a b c"
    assert narrow_scope("a b c", ["c", "a"]) == "a c"
    with pytest.raises(InvalidScope):
        narrow_scope("a b", ["a", "z"])


def test_revoke_for_session_keeps_offline_when_asked(grants: RefreshTokens) -> None:
    offline = _start(grants, scope="openid offline_access")
    online = _start(grants, scope="openid")
    assert grants.revoke_for_session("s1", keep_offline=True, actor="u", reason="logout") == 1
    assert grants.lookup(offline) is not None and grants.lookup(online) is None
    assert grants.revoke_for_session("s1", keep_offline=False, actor="u", reason="logout") == 1
    assert grants.lookup(offline) is None


def test_revoke_refresh_token_only_by_its_client(grants: RefreshTokens) -> None:
    t0 = _start(grants)
    assert not grants.revoke_refresh_token(t0, client_id="other", actor="other")
    assert grants.lookup(t0) is not None
    assert grants.revoke_refresh_token(t0, client_id="c", actor="c")
    assert grants.lookup(t0) is None
    assert not grants.revoke_refresh_token("garbage", client_id="c", actor="c")


def test_revoke_for_user_and_client_filter(grants: RefreshTokens) -> None:
    _start(grants, user="u")
    _start(grants, user="v")
    assert grants.revoke_for_user("u", actor="admin", reason="x", client_id="nope") == 0
    assert grants.revoke_for_user("u", actor="admin", reason="x") == 1
    assert len(grants.grants_for_user("v")) == 1


@pytest.mark.parametrize("how", ["session", "grant", "user", "reuse", "token"])
def test_a_revoked_family_gets_no_grace_repeat(grants: RefreshTokens, store: MemoryGrantStore, how: str) -> None:
    """RFC 9700 §4.14.2: once the family is revoked, a repeat inside the grace window is refused, never answered
    with the successor kept for repeats."""
    first = _start(grants)
    mid = grants.rotate(first, client_id="c", scope=None, mint=mint)["refresh_token"]
    last = grants.rotate(mid, client_id="c", scope=None, mint=mint)  # mid: rotated just now, inside grace
    grant_id = next(iter(store.grants))
    if how == "session":
        assert grants.revoke_for_session("s1", keep_offline=False, actor="u", reason="logout") == 1
    elif how == "grant":
        assert grants.revoke_grant(grant_id, actor="admin", reason="admin")
    elif how == "user":
        assert grants.revoke_for_user("u", actor="admin", reason="disable") == 1
    elif how == "reuse":
        with pytest.raises(InvalidGrant, match="already used"):  # first's grace copy is gone: reuse
            grants.rotate(first, client_id="c", scope=None, mint=mint)
    else:
        assert grants.revoke_refresh_token(last["refresh_token"], client_id="c", actor="c")
    with pytest.raises(InvalidGrant, match="^refresh token was revoked$"):
        grants.rotate(mid, client_id="c", scope=None, mint=mint)


def test_lookup_honours_the_idle_lifetime_before_the_absolute_one(grants: RefreshTokens, clock: FrozenClock) -> None:
    """Introspection's view (RFC 7662 §2.2): past the idle lifetime a refresh token is inactive, although its
    family's absolute lifetime (1000 s here) is far off."""
    token = _start(grants)
    clock.advance(99)
    assert grants.lookup(token) is not None
    clock.advance(1)  # idle_ttl=100: exactly at the deadline is too late
    assert grants.lookup(token) is None
    with pytest.raises(InvalidGrant, match="expired"):
        grants.rotate(token, client_id="c", scope=None, mint=mint)


def test_lookup_honours_the_absolute_lifetime(grants: RefreshTokens, clock: FrozenClock) -> None:
    token = _start(grants)
    for _ in range(10):  # sliding: each rotation restarts the idle clock, never the absolute one
        clock.advance(99)
        token = grants.rotate(token, client_id="c", scope=None, mint=mint)["refresh_token"]
    clock.advance(9)  # 999 s in
    assert grants.lookup(token) is not None
    clock.advance(1)
    assert grants.lookup(token) is None
    with pytest.raises(InvalidGrant, match="expired"):
        grants.rotate(token, client_id="c", scope=None, mint=mint)


def test_lookup_refuses_rotated_revoked_and_implausible_tokens(grants: RefreshTokens) -> None:
    token = _start(grants)
    found = grants.lookup(token)
    assert found is not None and found[1].client_id == "c" and found[0].scope == "openid offline_access"
    successor = grants.rotate(token, client_id="c", scope=None, mint=mint)["refresh_token"]
    assert grants.lookup(token) is None  # rotated
    assert grants.lookup(successor) is not None
    grants.revoke_for_user("u", actor="admin", reason="x")
    assert grants.lookup(successor) is None  # revoked
    assert grants.lookup("") is None and grants.lookup("x" * 513) is None and grants.lookup("unknown") is None


@pytest.mark.parametrize("actor", ["", "admin:ops"])
def test_reuse_names_its_actor_in_the_audit_event_and_the_deny_list(
    grants: RefreshTokens, clock: FrozenClock, store: MemoryGrantStore, actor: str
) -> None:
    """Who presented the rotated token (the calling client unless an actor is given) is on record."""
    t0 = _start(grants)
    grants.rotate(t0, client_id="c", scope=None, mint=mint)
    clock.advance(6)
    with pytest.raises(InvalidGrant, match="^refresh token was already used; the grant is revoked$"):
        grants.rotate(t0, client_id="c", scope=None, mint=mint, actor=actor)
    expected = actor or "c"
    ((action, event),) = store.audits
    grant_id = next(iter(store.grants))
    assert action == "refresh_token_reuse"
    assert event == {"actor": expected, "subject": "u", "client_id": "c", "grant_id": grant_id}
    assert len(store.denied) == 2
    assert all(e.actor == expected and e.reason == "refresh token reuse" for e in store.denied)
    assert store.grants[grant_id].revoked_reason == "refresh token reuse"


def test_a_token_this_process_issued_rotates_without_a_read_and_stale_memory_changes_no_outcome(
    grants: RefreshTokens, clock: FrozenClock, store: MemoryGrantStore
) -> None:
    reads: list[bytes] = []
    real_find = store.find

    def counted(digest: bytes):  # type: ignore[no-untyped-def]
        reads.append(digest)
        return real_find(digest)

    store.find = counted  # type: ignore[method-assign]
    t0 = _start(grants)
    r1 = grants.rotate(t0, client_id="c", scope=None, mint=mint)
    r2 = grants.rotate(r1["refresh_token"], client_id="c", scope=None, mint=mint)
    assert reads == []  # both issued here: the rotation is its one write
    clock.advance(6)
    with pytest.raises(InvalidGrant, match="already used"):  # the remembered row is used once: reuse is seen
        grants.rotate(r1["refresh_token"], client_id="c", scope=None, mint=mint)
    assert reads  # read from the store this time
    assert store.grants  # the family, revoked by the reuse
    assert all(g.revoked_at is not None for g in store.grants.values())
    with pytest.raises(InvalidGrant):  # remembered as live, revoked in the store: the write refuses it
        grants.rotate(r2["refresh_token"], client_id="c", scope=None, mint=mint)


def test_a_family_revoked_elsewhere_is_refused_though_remembered(
    grants: RefreshTokens, store: MemoryGrantStore
) -> None:
    t0 = _start(grants)
    for g in store.grants.values():  # another process revoked it: this one still remembers the token as live
        g.revoked_at = 1.0
    with pytest.raises(InvalidGrant, match="revoked"):
        grants.rotate(t0, client_id="c", scope=None, mint=mint)


def test_a_family_is_bound_before_its_successor_is_written(
    grants: RefreshTokens, store: MemoryGrantStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 9449 §5: if the request dies between the two writes, no unbound successor is left behind: the
    binding comes first, and the token (still unrotated) then needs the key."""
    t0 = _start(grants)

    def crash(*args: object, **kwargs: object) -> bool:
        raise RuntimeError("the process died here")

    with monkeypatch.context() as patch:
        patch.setattr(store, "rotate", crash)
        with pytest.raises(RuntimeError):
            grants.rotate(t0, client_id="c", scope=None, mint=mint, jkt="key-1", bind=True)
    with pytest.raises(InvalidGrant):
        grants.rotate(t0, client_id="c", scope=None, mint=mint)  # no proof: the family is bound now
    with pytest.raises(InvalidGrant):
        grants.rotate(t0, client_id="c", scope=None, mint=mint, jkt="key-2", bind=True)  # nor another key
    assert grants.rotate(t0, client_id="c", scope=None, mint=mint, jkt="key-1", bind=True)["refresh_token"]


def test_of_two_keys_binding_at_once_one_wins(grants: RefreshTokens, store: MemoryGrantStore) -> None:
    """Another request bound the family between our read and our bind: its key is the family's, ours refused."""
    t0 = _start(grants)
    [grant] = store.grants.values()
    real_bind = store.bind_key

    def bound_first(grant_id: str, jkt: str) -> bool:
        real_bind(grant_id, "key-other")  # the other request's bind lands first
        return real_bind(grant_id, jkt)

    store.bind_key = bound_first  # type: ignore[method-assign]
    with pytest.raises(InvalidGrant):
        grants.rotate(t0, client_id="c", scope=None, mint=mint, jkt="key-1", bind=True)
    assert grant.jkt == "key-other"
