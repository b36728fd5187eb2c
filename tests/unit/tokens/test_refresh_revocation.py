"""Grant revocation in the core: every live access token of every revoked family goes to the deny-list in ONE
batch, and the revocation endpoint's lookup tells an unknown token from another client's."""

from __future__ import annotations

import os

import pytest

from idp.clock import FrozenClock
from idp.crypto import Digester, Sealer
from idp.errors import InvalidGrant
from idp.events import Events, GrantRevoked
from idp.tokens.refresh import Minted, RefreshTokens
from tests.oauthkit import RecordingDenyList
from tests.unit.tokens.fakes import MemoryGrantStore

NOW = 1_700_000_000.0


def _grants() -> tuple[RefreshTokens, RecordingDenyList, MemoryGrantStore]:
    kek, deny, store = os.urandom(32), RecordingDenyList(), MemoryGrantStore()
    grants = RefreshTokens(store, Digester(kek), Sealer(kek), FrozenClock(NOW), idle_ttl=100, absolute_ttl=1000,
                           grace_seconds=5, grace_max_uses=1, denylist=deny)  # fmt: skip
    return grants, deny, store


def _family(grants: RefreshTokens, tag: str, user: str = "u", client: str = "c") -> str:
    _, token = grants.start(client_id=client, user_id=user, sid="s1", scope="openid", audience="a", auth_time=1.0,
                            acr=None, amr=[], code_digest=None, at_jti=f"{tag}-0", at_exp=NOW + 600,
                            with_refresh=True)  # fmt: skip
    assert token
    minted = Minted(response={"access_token": "x"}, at_jti=f"{tag}-1", at_exp=NOW + 600)
    return str(grants.rotate(token, client_id=client, scope=None, mint=lambda g, s: minted)["refresh_token"])


def test_revoking_several_families_denies_all_their_access_tokens_in_one_batch() -> None:
    grants, deny, _ = _grants()
    _family(grants, "a")
    _family(grants, "b")
    assert grants.revoke_for_user("u", actor="admin", reason="disabled") == 2
    assert deny.batches == [4]
    assert sorted(v for _, v, _, _ in deny.calls) == ["a-0", "a-1", "b-0", "b-1"]
    assert grants.revoke_for_user("u", actor="admin", reason="again") == 0
    assert deny.batches == [4]  # nothing live: no empty batch


def test_revoke_by_refresh_token_owner_unknown_foreign() -> None:
    grants, deny, store = _grants()
    token = _family(grants, "a")
    assert grants.revoke_by_refresh_token("nope", client_id="c", actor="c") is None
    assert grants.revoke_by_refresh_token("x" * 600, client_id="c", actor="c") is None
    assert grants.revoke_by_refresh_token(token, client_id="other", actor="other") == "c"
    assert deny.calls == [] and grants.lookup(token) is not None  # another client's token: untouched
    assert grants.revoke_by_refresh_token(token, client_id="c", actor="c") == "c"
    assert deny.batches == [2] and grants.lookup(token) is None
    assert [a for a, _ in store.audits] == ["grant_revoked"]
    assert not grants.revoke_refresh_token(token, client_id="c", actor="c")  # already revoked
    assert deny.batches == [2]


def test_each_revoked_family_is_published_after_the_commit() -> None:
    kek, store, events = os.urandom(32), MemoryGrantStore(), Events()
    grants = RefreshTokens(store, Digester(kek), Sealer(kek), FrozenClock(NOW), idle_ttl=100, absolute_ttl=1000,
                           grace_seconds=0, grace_max_uses=1, denylist=RecordingDenyList(), events=events)  # fmt: skip
    seen: list[GrantRevoked] = []
    events.subscribe(GrantRevoked, seen.append)
    _family(grants, "a")
    _family(grants, "b", client="d")
    assert grants.revoke_for_user("u", actor="admin", reason="disabled", client_id="d") == 1
    (only,) = seen
    assert (only.client_id, only.user_id, only.actor, only.reason) == ("d", "u", "admin", "disabled")
    assert store.grants[only.grant_id].client_id == "d"


def test_a_reused_refresh_token_publishes_its_family() -> None:
    kek, store, events = os.urandom(32), MemoryGrantStore(), Events()
    grants = RefreshTokens(store, Digester(kek), Sealer(kek), FrozenClock(NOW), idle_ttl=100, absolute_ttl=1000,
                           grace_seconds=0, grace_max_uses=1, denylist=RecordingDenyList(), events=events)  # fmt: skip
    seen: list[GrantRevoked] = []
    events.subscribe(GrantRevoked, seen.append)
    _, token = grants.start(client_id="c", user_id="u", sid="s1", scope="openid", audience="a", auth_time=1.0,
                            acr=None, amr=[], code_digest=None, at_jti="j0", at_exp=NOW + 600,
                            with_refresh=True)  # fmt: skip
    assert token
    minted = Minted(response={"access_token": "x"}, at_jti="j1", at_exp=NOW + 600)
    grants.rotate(token, client_id="c", scope=None, mint=lambda g, s: minted)
    with pytest.raises(InvalidGrant):
        grants.rotate(token, client_id="c", scope=None, mint=lambda g, s: minted)
    assert [(e.client_id, e.user_id, e.actor, e.reason) for e in seen] == [("c", "u", "c", "refresh token reuse")]
    assert grants.revoke_by_refresh_token(token, client_id="c", actor="c") == "c"
    assert len(seen) == 1  # already revoked: nothing new to announce
