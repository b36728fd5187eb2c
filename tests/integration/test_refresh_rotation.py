"""Refresh tokens: rotation on every use, reuse revokes the family, grace window, binding, lifetimes, scope."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from idp.services import Services
from idp.store.models import GrantRow, RefreshTokenRow
from tests.oauthkit import (
    RecordingDenyList,
    make_user,
    native_client,
    refresh,
    stand_in,
    tokens_for,
    web_client,
)

OFFLINE = {"scope": "openid profile offline_access"}


async def _userinfo(client: httpx.AsyncClient, at: str) -> int:
    return (await client.get("/userinfo", headers={"authorization": f"Bearer {at}"})).status_code


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"refresh_grace_seconds": 5, "refresh_grace_max_uses": 2}


async def test_rotation_on_every_use(client: httpx.AsyncClient, container: Services) -> None:
    native = native_client(container)  # public client: RFC 9700 §4.14.2 requires rotation
    t0 = await tokens_for(container, client, native, None, make_user(container), **OFFLINE)
    r1 = await refresh(client, native, None, t0["refresh_token"])
    assert r1.status_code == 200, r1.text
    t1 = r1.json()
    assert t1["refresh_token"] != t0["refresh_token"] and t1["access_token"] != t0["access_token"]
    assert r1.headers["cache-control"] == "no-store"
    assert "id_token" in t1  # openid scope: a fresh ID token too
    container.clock.advance(6)  # outside the grace window
    r = await refresh(client, native, None, t0["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"  # the old one is dead


async def test_reuse_revokes_the_family_and_its_access_tokens(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    user = make_user(container)
    t0 = await tokens_for(container, client, web, secret, user, **OFFLINE)
    other = await tokens_for(container, client, web, secret, user, **OFFLINE)  # another device's family
    t1 = (await refresh(client, web, secret, t0["refresh_token"])).json()
    assert await _userinfo(client, t1["access_token"]) == 200
    container.clock.advance(6)
    r = await refresh(client, web, secret, t0["refresh_token"])  # theft signal
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert (await refresh(client, web, secret, t1["refresh_token"])).status_code == 400  # successor dead too
    assert await _userinfo(client, t1["access_token"]) == 401  # its live access token deny-listed
    assert await _userinfo(client, t0["access_token"]) == 401
    assert (await refresh(client, web, secret, other["refresh_token"])).status_code == 200  # other family alive
    events = container.audit.query(action="refresh_token_reuse")
    assert events and events[0].subject == user.id and events[0].client_id == web.client_id


async def test_reuse_deny_lists_every_live_jti(
    client: httpx.AsyncClient, container: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = RecordingDenyList()
    stand_in(monkeypatch, container.denylist, recorder)
    web, secret = web_client(container)
    t0 = await tokens_for(container, client, web, secret, make_user(container), **OFFLINE)
    t1 = (await refresh(client, web, secret, t0["refresh_token"])).json()
    verify = container.access_tokens.verify
    jtis = {verify(t["access_token"], audience=None)[1]["jti"] for t in (t0, t1)}
    container.clock.advance(6)
    await refresh(client, web, secret, t0["refresh_token"])
    assert {v for k, v, _, _ in recorder.calls if k == "jti"} == jtis
    assert all(until is not None and until > container.clock.now() for _, _, until, _ in recorder.calls)


async def test_grace_window_returns_the_same_successor(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    t0 = await tokens_for(container, client, web, secret, make_user(container), **OFFLINE)
    first = (await refresh(client, web, secret, t0["refresh_token"])).json()
    container.clock.advance(2)
    again = (await refresh(client, web, secret, t0["refresh_token"])).json()
    assert again == first  # idempotent: a retry gets the same tokens, not a second branch
    again2 = await refresh(client, web, secret, t0["refresh_token"])
    assert again2.json() == first
    # Beyond the count (2 repeats), a repeat is reuse: the family dies.
    r = await refresh(client, web, secret, t0["refresh_token"])
    assert r.status_code == 400
    assert (await refresh(client, web, secret, first["refresh_token"])).status_code == 400


async def test_grace_ends_once_the_successor_is_used(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    t0 = await tokens_for(container, client, web, secret, make_user(container), **OFFLINE)
    t1 = (await refresh(client, web, secret, t0["refresh_token"])).json()
    t2 = (await refresh(client, web, secret, t1["refresh_token"])).json()
    r = await refresh(client, web, secret, t0["refresh_token"])  # inside 5 s, but its successor moved on
    assert r.status_code == 400
    assert (await refresh(client, web, secret, t2["refresh_token"])).status_code == 400


async def test_sealed_successor_is_dropped_after_the_window(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    t0 = await tokens_for(container, client, web, secret, make_user(container), **OFFLINE)
    await refresh(client, web, secret, t0["refresh_token"])
    with container.sessions() as s:
        assert s.scalars(select(RefreshTokenRow.successor_enc).where(RefreshTokenRow.successor_enc.is_not(None))).all()
    container.clock.advance(10)
    container.grants.purge()
    with container.sessions() as s:
        assert not s.scalars(select(RefreshTokenRow).where(RefreshTokenRow.successor_enc.is_not(None))).all()


async def test_bound_to_the_client(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    other, other_secret = web_client(container)
    t0 = await tokens_for(container, client, web, secret, make_user(container), **OFFLINE)
    r = await refresh(client, other, other_secret, t0["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"  # RFC 6749 §6
    assert (await refresh(client, web, secret, t0["refresh_token"])).status_code == 200  # not burnt by the attempt


async def test_scope_may_narrow_never_widen(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    t0 = await tokens_for(container, client, web, secret, make_user(container), **OFFLINE)
    r = await refresh(client, web, secret, t0["refresh_token"], scope="openid profile email offline_access")
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"  # RFC 6749 §6
    r = await refresh(client, web, secret, t0["refresh_token"], scope="openid")
    assert r.status_code == 200 and r.json()["scope"] == "openid"
    # The narrowed refresh token still carries the original grant: widening back to it is allowed.
    r = await refresh(client, web, secret, r.json()["refresh_token"], scope="openid profile")
    assert r.status_code == 200 and r.json()["scope"] == "openid profile"


async def test_idle_expiry(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    t0 = await tokens_for(container, client, web, secret, make_user(container), **OFFLINE)
    container.clock.advance(container.settings.refresh_idle_ttl - 10)
    t1 = (await refresh(client, web, secret, t0["refresh_token"])).json()  # sliding: still alive
    container.clock.advance(container.settings.refresh_idle_ttl + 1)
    r = await refresh(client, web, secret, t1["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_absolute_expiry_despite_sliding(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    token = (await tokens_for(container, client, web, secret, make_user(container), **OFFLINE))["refresh_token"]
    step = container.settings.refresh_idle_ttl - 60
    elapsed = 0
    while elapsed + step < container.settings.refresh_absolute_ttl:
        container.clock.advance(step)
        elapsed += step
        r = await refresh(client, web, secret, token)
        assert r.status_code == 200, elapsed
        token = r.json()["refresh_token"]
    container.clock.advance(container.settings.refresh_absolute_ttl - elapsed + 1)
    r = await refresh(client, web, secret, token)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"  # ASVS V10.4.8


async def test_disabled_user_cannot_refresh(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    user = make_user(container)
    t0 = await tokens_for(container, client, web, secret, user, **OFFLINE)
    container.directory.set_disabled(user.username, True)
    r = await refresh(client, web, secret, t0["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_stored_as_digest_only(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    t0 = await tokens_for(container, client, web, secret, make_user(container), **OFFLINE)
    assert len(t0["refresh_token"]) >= 43  # >= 256 bits
    with container.sessions() as s:
        digests = s.scalars(select(RefreshTokenRow.digest)).all()
        assert container.digester.digest(t0["refresh_token"]) in digests
        assert all(t0["refresh_token"].encode() not in (d or b"") for d in digests)


async def test_who_gets_refresh_tokens(client: httpx.AsyncClient, container: Services) -> None:
    third, secret = web_client(container, first_party=False)
    user = make_user(container)
    container.consents.grant(user.id, third.client_id, ["openid", "profile", "offline_access"])
    t = await tokens_for(container, client, third, secret, user, scope="openid profile")
    assert "refresh_token" not in t  # OIDC third party without offline_access
    t = await tokens_for(container, client, third, secret, user, **OFFLINE)
    assert "refresh_token" in t
    first, secret1 = web_client(container)
    t = await tokens_for(container, client, first, secret1, user, scope="openid profile")
    assert "refresh_token" in t  # first-party: session-bound refresh token
    plain, secret2 = web_client(container, scope="api", first_party=False)
    container.consents.grant(user.id, plain.client_id, ["api"])
    t = await tokens_for(container, client, plain, secret2, user, scope="api")
    assert "refresh_token" in t and "id_token" not in t  # plain OAuth
    none, secret3 = web_client(container, grant_types=["authorization_code"])
    t = await tokens_for(container, client, none, secret3, user, **OFFLINE)
    assert "refresh_token" not in t  # not registered for refresh_token


async def test_logout_keeps_offline_grants_but_kills_session_grants(
    client: httpx.AsyncClient, container: Services
) -> None:
    web, secret = web_client(container)
    user = make_user(container)
    offline = await tokens_for(container, client, web, secret, user, **OFFLINE)
    session_bound = await tokens_for(container, client, web, secret, user, scope="openid profile")
    with container.sessions() as s:
        sids = set(s.scalars(select(GrantRow.sid)).all())
    assert len(sids) == 2  # tokens_for signs in again: each grant is bound to its login session
    for sid in sids:
        container.grants.revoke_for_session(sid, keep_offline=True, actor="test", reason="logout")
    assert (await refresh(client, web, secret, offline["refresh_token"])).status_code == 200
    assert (await refresh(client, web, secret, session_bound["refresh_token"])).status_code == 400
    n = container.grants.revoke_for_user(user.id, actor="admin", reason="disable")
    assert n == 1
    assert not container.grants.grants_for_user(user.id)


@pytest.mark.parametrize("kind", ["subject", "client"])
async def test_a_subject_or_client_cut_off_also_stops_refresh(
    client: httpx.AsyncClient, container: Services, clock, kind: str
) -> None:
    """The token endpoint agrees with introspection: a "not before" cut-off covers earlier refresh tokens."""
    native = native_client(container)
    user = make_user(container)
    t0 = await tokens_for(container, client, native, None, user, **OFFLINE)
    clock.advance(1)
    container.denylist.deny(kind, user.id if kind == "subject" else native.client_id, reason="test", actor="test")
    r = await refresh(client, native, None, t0["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    clock.advance(1)
    t1 = await tokens_for(container, client, native, None, user, **OFFLINE)  # issued after the cut-off
    assert (await refresh(client, native, None, t1["refresh_token"])).status_code == 200


@pytest.mark.parametrize("how", ["logout", "admin", "reuse", "client"])
async def test_a_revoked_family_gets_no_grace_repeat(client: httpx.AsyncClient, container: Services, how: str) -> None:
    """Once the family is revoked, the token rotated a moment ago is dead too: a repeat inside the grace window
    gets invalid_grant, never the successor kept for repeats (RFC 9700 §4.14.2)."""
    from tests.integration.test_revocation import revoke

    web, secret = web_client(container)
    user = make_user(container)
    first = await tokens_for(container, client, web, secret, user, scope="openid profile")  # session-bound
    mid = (await refresh(client, web, secret, first["refresh_token"])).json()
    last = (await refresh(client, web, secret, mid["refresh_token"])).json()  # mid: rotated just now
    found = container.grants.lookup(last["refresh_token"])
    assert found is not None
    if how == "logout":
        assert container.grants.revoke_for_session(found[1].sid or "", keep_offline=False, actor="u", reason="logout")
    elif how == "admin":
        assert container.grants.revoke_for_user(user.id, actor="admin:ops", reason="disable") == 1
    elif how == "reuse":
        assert (await refresh(client, web, secret, first["refresh_token"])).status_code == 400  # its grace is gone
    else:
        assert (await revoke(client, web.client_id, secret, last["refresh_token"])).status_code == 200  # RFC 7009
    r = await refresh(client, web, secret, mid["refresh_token"])  # still inside the 5 s window
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    assert last["refresh_token"] not in r.text and last["access_token"] not in r.text


async def test_reuse_names_the_actor_in_the_audit_event_and_the_deny_list(
    client: httpx.AsyncClient, container: Services
) -> None:
    """Who presented the rotated token is on record: the reuse audit event and every deny-list entry it wrote."""
    web, secret = web_client(container)
    user = make_user(container)
    t0 = await tokens_for(container, client, web, secret, user, **OFFLINE)
    t1 = (await refresh(client, web, secret, t0["refresh_token"])).json()
    container.clock.advance(6)
    assert (await refresh(client, web, secret, t0["refresh_token"])).status_code == 400
    (event,) = container.audit.query(action="refresh_token_reuse")
    assert event.actor == web.client_id and event.subject == user.id and event.client_id == web.client_id
    verify = container.access_tokens.verify
    jtis = {verify(t["access_token"], audience=None)[1]["jti"] for t in (t0, t1)}
    entries = [e for e in container.denylist.list() if e.kind == "jti"]
    assert {e.value for e in entries} == jtis
    assert all(e.actor == web.client_id and e.reason == "refresh token reuse" for e in entries)
