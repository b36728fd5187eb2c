"""What the refresh core records and hands on: scopes, times and row locks it gives the store, the audit events
and deny-list entries of every revocation path, the grace window's edges, and its exact error texts."""

from __future__ import annotations

import os
from typing import Any

import pytest

from idp.clock import FrozenClock
from idp.crypto import Digester, Sealer
from idp.errors import InvalidGrant, InvalidScope
from idp.tokens.refresh import GrantRecord, Minted, RefreshTokens, narrow_scope
from tests.oauthkit import RecordingDenyList
from tests.unit.tokens.fakes import MemoryGrantStore

NOW = 1_700_000_000.0
CODE = b"code-digest"


class Mint:
    """A mint that records what it was asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[GrantRecord, str]] = []

    def __call__(self, grant: GrantRecord, scope: str) -> Minted:
        self.calls.append((grant, scope))
        n = len(self.calls)
        return Minted(response={"access_token": f"at{n}", "scope": scope}, at_jti=f"jti-{n}", at_exp=NOW + 600)


def _grants(store: MemoryGrantStore, clock: FrozenClock, *, grace: float = 5, deny: Any = None) -> RefreshTokens:
    kek = os.urandom(32)
    recorder = RecordingDenyList() if deny is None else deny
    return RefreshTokens(store, Digester(kek), Sealer(kek), clock, idle_ttl=100, absolute_ttl=1000,
                         grace_seconds=grace, grace_max_uses=3, denylist=recorder or None)  # fmt: skip


def _start(
    grants: RefreshTokens,
    *,
    user: str = "u",
    scope: str = "openid profile offline_access",
    sid: str = "s1",
    code: bytes = CODE,
) -> str:
    _, token = grants.start(client_id="c", user_id=user, sid=sid, scope=scope, audience="a", auth_time=1.0,
                            acr=None, amr=[], code_digest=code, at_jti=f"jti-{user}", at_exp=NOW + 600,
                            with_refresh=True)  # fmt: skip
    assert token
    return token


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def store() -> MemoryGrantStore:
    return MemoryGrantStore()


@pytest.fixture
def grants(store: MemoryGrantStore, clock: FrozenClock) -> RefreshTokens:
    return _grants(store, clock)


def test_a_narrowed_scope_reaches_the_mint_and_the_successor(grants: RefreshTokens, clock: FrozenClock) -> None:
    mint = Mint()
    token = _start(grants)
    clock.advance(3)
    body = grants.rotate(token, client_id="c", scope=["openid"], mint=mint)
    ((grant, scope),) = mint.calls
    assert scope == "openid" and grant.client_id == "c" and grant.scope == "openid profile offline_access"
    row, _ = grants.lookup(body["refresh_token"]) or (None, None)
    assert row is not None and row.scope == "openid" and row.created_at == NOW + 3  # iat for later cut-offs
    with pytest.raises(InvalidScope, match="^the requested scope exceeds the original grant$"):
        narrow_scope("openid", ["openid", "admin"])


def test_rotation_gives_up_after_three_lost_races(clock: FrozenClock) -> None:
    """A store that never lets the rotation win (and never shows it rotated): three tries, then invalid_grant."""

    class Stuck(MemoryGrantStore):
        def rotate(self, old_id, successor, *, now, sealed):  # type: ignore[no-untyped-def]
            return False

    grants = _grants(Stuck(), clock)
    token = _start(grants)
    mint = Mint()
    with pytest.raises(InvalidGrant, match="^refresh token is being used concurrently$"):
        grants.rotate(token, client_id="c", scope=None, mint=mint)
    assert len(mint.calls) == 3


def test_the_repeat_path_reads_under_lock(grants: RefreshTokens, store: MemoryGrantStore) -> None:
    token = _start(grants)
    grants.rotate(token, client_id="c", scope=None, mint=Mint())
    grants.rotate(token, client_id="c", scope=None, mint=Mint())  # a repeat: decided under the row locks
    assert store.locked_reads == [True]


@pytest.mark.parametrize("elapsed", [0, 5])
def test_the_grace_window_is_inclusive(grants: RefreshTokens, clock: FrozenClock, elapsed: float) -> None:
    token = _start(grants)
    first = grants.rotate(token, client_id="c", scope=None, mint=Mint())
    clock.advance(elapsed)
    assert grants.rotate(token, client_id="c", scope=None, mint=Mint()) == first


def test_a_one_second_grace_window_works(store: MemoryGrantStore, clock: FrozenClock) -> None:
    grants = _grants(store, clock, grace=1)
    token = _start(grants)
    first = grants.rotate(token, client_id="c", scope=None, mint=Mint())
    assert grants.rotate(token, client_id="c", scope=None, mint=Mint()) == first


def test_without_grace_no_response_is_kept(store: MemoryGrantStore, clock: FrozenClock) -> None:
    """grace 0 turns repeats off: no sealed copy of the tokens is stored at all."""
    grants = _grants(store, clock, grace=0)
    token = _start(grants)
    grants.rotate(token, client_id="c", scope=None, mint=Mint())
    assert all(t.successor_enc is None for t in store.tokens.values())
    with pytest.raises(InvalidGrant, match="already used"):
        grants.rotate(token, client_id="c", scope=None, mint=Mint())


def test_expiry_messages(grants: RefreshTokens, clock: FrozenClock) -> None:
    token = _start(grants)
    clock.advance(100)  # the idle deadline itself is too late
    with pytest.raises(InvalidGrant, match="^refresh token expired$"):
        grants.rotate(token, client_id="c", scope=None, mint=Mint())
    token = _start(grants, user="v")
    for _ in range(10):
        clock.advance(99)
        token = grants.rotate(token, client_id="c", scope=None, mint=Mint())["refresh_token"]
    clock.advance(10)  # the absolute deadline itself is too late
    with pytest.raises(InvalidGrant, match="^refresh token expired$"):
        grants.rotate(token, client_id="c", scope=None, mint=Mint())
    with pytest.raises(InvalidGrant, match="^unknown refresh token$"):
        grants.rotate("unknown", client_id="c", scope=None, mint=Mint())
    token = _start(grants, user="w")
    with pytest.raises(InvalidGrant, match="^refresh token was issued to another client$"):
        grants.rotate(token, client_id="other", scope=None, mint=Mint())


def test_reuse_revokes_only_its_own_family(grants: RefreshTokens, store: MemoryGrantStore, clock: FrozenClock) -> None:
    other = _start(grants, user="v")
    token = _start(grants)
    grants.rotate(token, client_id="c", scope=None, mint=Mint())
    clock.advance(6)
    with pytest.raises(InvalidGrant):
        grants.rotate(token, client_id="c", scope=None, mint=Mint())
    assert grants.lookup(other) is not None
    assert [g.user_id for g in store.grants.values() if g.revoked_at is not None] == ["u"]


def test_reuse_without_an_actor_names_the_client(
    grants: RefreshTokens, store: MemoryGrantStore, clock: FrozenClock
) -> None:
    token = _start(grants)
    grants.rotate(token, client_id="c", scope=None, mint=Mint())
    clock.advance(6)
    with pytest.raises(InvalidGrant):
        grants.rotate(token, client_id="c", scope=None, mint=Mint())  # no actor given
    assert store.audits[0][1]["actor"] == "c"
    assert {e.actor for e in store.denied} == {"c"}


REVOCATIONS = {
    "grant": lambda g, store: g.revoke_grant(
        next(x.id for x in store.grants.values() if x.user_id == "u"), actor="admin:ops", reason="why"
    ),
    "code": lambda g, store: g.revoke_by_code(CODE, actor="admin:ops", reason="why"),
    "session": lambda g, store: g.revoke_for_session("s1", keep_offline=False, actor="admin:ops", reason="why"),
    "user": lambda g, store: g.revoke_for_user("u", actor="admin:ops", reason="why"),
}


@pytest.mark.parametrize("how", list(REVOCATIONS))
def test_every_revocation_path_records_actor_and_reason(
    grants: RefreshTokens, store: MemoryGrantStore, clock: FrozenClock, how: str
) -> None:
    bystander = _start(grants, user="v", sid="s2", code=b"another code")  # matches none of the filters
    store.denied.clear()
    token = _start(grants)
    grants.rotate(token, client_id="c", scope=None, mint=Mint())
    clock.advance(1)
    assert REVOCATIONS[how](grants, store)
    assert grants.lookup(bystander) is not None
    grant_id = next(g.id for g in store.grants.values() if g.user_id == "u")
    event = {"actor": "admin:ops", "subject": "u", "client_id": "c", "grant_id": grant_id, "reason": "why"}
    assert store.audits == [("grant_revoked", event)]
    assert store.grants[grant_id].revoked_reason == "why"
    assert sorted(e.value for e in store.denied) == ["jti-1", "jti-u"]
    assert all((e.kind, e.actor, e.reason, e.created_at) == ("jti", "admin:ops", "why", NOW + 1) for e in store.denied)


@pytest.mark.parametrize("ask", ["revoke_refresh_token", "revoke_by_refresh_token"])
def test_client_revocation_records_the_client(grants: RefreshTokens, store: MemoryGrantStore, ask: str) -> None:
    token = _start(grants)
    assert getattr(grants, ask)(token, client_id="c", actor="client:c") in (True, "c")
    grant_id = next(iter(store.grants))
    event = {"actor": "client:c", "subject": "u", "client_id": "c", "grant_id": grant_id, "reason": "revoked by client"}
    assert store.audits == [("grant_revoked", event)]
    assert store.grants[grant_id].revoked_reason == "revoked by client"
    assert [(e.actor, e.reason) for e in store.denied] == [("client:c", "revoked by client")]


@pytest.mark.parametrize("token", ["", "x" * 513])
def test_implausible_tokens_revoke_nothing(grants: RefreshTokens, store: MemoryGrantStore, token: str) -> None:
    _start(grants)
    assert grants.revoke_refresh_token(token, client_id="c", actor="c") is False
    assert grants.revoke_by_refresh_token(token, client_id="c", actor="c") is None
    assert not store.audits


def test_without_a_deny_list_revocation_still_works(store: MemoryGrantStore, clock: FrozenClock) -> None:
    grants = _grants(store, clock, deny=False)
    _start(grants)
    assert grants.revoke_for_user("u", actor="admin", reason="x") == 1
    assert not store.denied


def test_live_grants_and_purge_use_the_clock(
    grants: RefreshTokens, store: MemoryGrantStore, clock: FrozenClock
) -> None:
    _start(grants)
    assert [g.user_id for g in grants.grants_for_user("u")] == ["u"]
    clock.advance(1000)
    assert grants.grants_for_user("u") == []  # past the absolute lifetime
    grants.purge()
    assert store.purges == [(NOW + 1000, 5)]


def test_the_family_keeps_what_the_authorization_established(store: MemoryGrantStore, clock: FrozenClock) -> None:
    """OIDC Core §12.2: a refresh mints from the original authentication (time, acr, amr) and audience."""
    grants = _grants(store, clock)
    grant, token = grants.start(client_id="c", user_id="u", sid="s1", scope="openid", audience="https://api",
                                auth_time=123.0, acr="urn:idp:mfa", amr=["pwd", "otp"], code_digest=CODE,
                                at_jti="jti-0", at_exp=NOW + 600, with_refresh=True)  # fmt: skip
    assert token
    clock.advance(7)
    mint = Mint()
    grants.rotate(token, client_id="c", scope=None, mint=mint)
    ((seen, _),) = mint.calls
    assert (seen.audience, seen.auth_time, seen.acr, seen.amr) == ("https://api", 123.0, "urn:idp:mfa", ["pwd", "otp"])
    assert seen.created_at == NOW and seen.absolute_expires_at == NOW + 1000 and seen.id == grant.id
    first = next(t for t in store.tokens.values() if t.at_jti == "jti-0")
    assert first.created_at == NOW and first.idle_expires_at == NOW + 100


def test_a_family_without_a_refresh_token(grants: RefreshTokens, store: MemoryGrantStore) -> None:
    """A code exchange without refresh: the family records the access token (so revocation can deny it)."""
    _, token = grants.start(client_id="c", user_id="u", sid="s1", scope="openid", audience="a", auth_time=1.0,
                            acr=None, amr=[], code_digest=CODE, at_jti="jti-0", at_exp=NOW + 600,
                            with_refresh=False)  # fmt: skip
    assert token is None
    (row,) = store.tokens.values()
    assert row.digest is None and row.at_jti == "jti-0"


class CutOffs(RecordingDenyList):
    """Subject and client cut-offs, matched as the real deny-list does."""

    def __init__(self, *entries: Any) -> None:
        super().__init__()
        from idp.denylist.denyset import DenySet

        self.set = DenySet(entries)

    def is_denied(self, claims: dict[str, Any], kid: str | None = None) -> bool:
        return self.set.is_denied(claims, kid) or super().is_denied(claims, kid)


@pytest.mark.parametrize(("kind", "value"), [("subject", "u"), ("client", "c")])
def test_a_cut_off_stops_refresh_tokens_issued_before_it(
    store: MemoryGrantStore, clock: FrozenClock, kind: str, value: str
) -> None:
    from idp.denylist.entries import DenyEntry

    cut = CutOffs(DenyEntry(1, kind, value, NOW + 10**6, NOW + 1))
    grants = _grants(store, clock, deny=cut)
    before = _start(grants)
    clock.advance(1)
    after = _start(grants, user="u", sid="s2", code=b"later")
    with pytest.raises(InvalidGrant, match="^refresh token was revoked$"):
        grants.rotate(before, client_id="c", scope=None, mint=Mint())
    assert grants.rotate(after, client_id="c", scope=None, mint=Mint())["refresh_token"]


def test_a_subject_cut_off_covers_a_family_without_a_user(store: MemoryGrantStore, clock: FrozenClock) -> None:
    """A family with no user (the client acting for itself) has the client as its subject."""
    from idp.denylist.entries import DenyEntry

    grants = _grants(store, clock, deny=CutOffs(DenyEntry(1, "subject", "c", NOW + 10**6, NOW + 1)))
    _, token = grants.start(client_id="c", user_id="", sid=None, scope="api", audience="a", auth_time=None,
                            acr=None, amr=[], code_digest=None, at_jti="jti-0", at_exp=NOW + 600,
                            with_refresh=True)  # fmt: skip
    assert token
    with pytest.raises(InvalidGrant, match="^refresh token was revoked$"):
        grants.rotate(token, client_id="c", scope=None, mint=Mint())
