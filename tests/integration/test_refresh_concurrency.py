"""Concurrent refreshes of one token: exactly one rotation, never two live successors."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
from sqlalchemy import func, select

from idp.errors import InvalidGrant
from idp.services import Services
from idp.store.models import RefreshTokenRow
from idp.tokens.refresh import Minted
from tests.oauthkit import make_user, refresh, tokens_for, web_client

OFFLINE = {"scope": "openid offline_access"}
N = 6


def _live_successors(container: Services) -> int:
    with container.sessions() as s:
        q = (
            select(func.count())
            .select_from(RefreshTokenRow)
            .where(RefreshTokenRow.rotated_at.is_(None), RefreshTokenRow.digest.is_not(None))
        )
        return int(s.scalar(q) or 0)


def _family(container: Services):  # type: ignore[no-untyped-def]
    """A client, and a family opened for one of its users: (client, grant, first refresh token)."""
    web, _ = web_client(container)
    user = make_user(container)
    now = container.clock.now()
    grant, token = container.grants.start(
        client_id=web.client_id, user_id=user.id, sid=None, scope="openid offline_access", audience="a",
        auth_time=None, acr=None, amr=[], code_digest=None, at_jti="j0", at_exp=now + 60, with_refresh=True,
    )  # fmt: skip
    assert token is not None
    return web, grant, token


def _until_waiting_on_a_lock(container: Services, thread: threading.Thread) -> None:
    """Poll (a condition, with a generous deadline) until a backend of this database waits on a lock."""
    from sqlalchemy import text

    waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    deadline = time.monotonic() + 30
    with container.engine.connect() as probe:
        while thread.is_alive() and not probe.execute(text(waiting)).scalar() and time.monotonic() < deadline:
            time.sleep(0.01)


@pytest.mark.parametrize("settings_overrides", [{"refresh_grace_seconds": 0}])
async def test_without_grace_exactly_one_wins(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    t0 = await tokens_for(container, client, web, secret, make_user(container), **OFFLINE)
    results = await asyncio.gather(*[refresh(client, web, secret, t0["refresh_token"]) for _ in range(N)])
    ok = [r for r in results if r.status_code == 200]
    assert len(ok) == 1, [r.status_code for r in results]
    assert all(r.json()["error"] == "invalid_grant" for r in results if r.status_code != 200)
    assert _live_successors(container) <= 1  # never two live branches


@pytest.mark.parametrize("settings_overrides", [{"refresh_grace_seconds": 5, "refresh_grace_max_uses": N}])
async def test_with_grace_all_get_the_same_successor(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    t0 = await tokens_for(container, client, web, secret, make_user(container), **OFFLINE)
    results = await asyncio.gather(*[refresh(client, web, secret, t0["refresh_token"]) for _ in range(N)])
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    bodies = {r.json()["refresh_token"] for r in results}
    assert len(bodies) == 1  # one rotation; every repeat got the same successor
    assert _live_successors(container) == 1
    assert (await refresh(client, web, secret, bodies.pop())).status_code == 200


@pytest.mark.parametrize("settings_overrides", [{"refresh_grace_seconds": 0}])
def test_threads_racing_in_the_core_have_one_winner(container: Services) -> None:
    """Drive RefreshTokens.rotate from threads directly, so the race is on the database, not the event loop."""
    container.keyring.tick()
    web, _ = web_client(container)
    user = make_user(container)
    _, token = container.grants.start(
        client_id=web.client_id, user_id=user.id, sid=None, scope="openid offline_access", audience="a",
        auth_time=None, acr=None, amr=[], code_digest=None, at_jti="j0", at_exp=container.clock.now() + 60,
        with_refresh=True,
    )  # fmt: skip
    assert token is not None
    barrier = threading.Barrier(N)
    wins: list[dict] = []
    losses: list[Exception] = []

    def mint(grant, scope):  # type: ignore[no-untyped-def]
        barrier.wait(timeout=10)  # everyone has read the token as live before anyone writes
        return Minted(response={"access_token": "x"}, at_jti=f"j{threading.get_ident()}", at_exp=1e12)

    def worker() -> None:
        try:
            wins.append(container.grants.rotate(token, client_id=web.client_id, scope=None, mint=mint))
        except InvalidGrant as exc:
            losses.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(wins) == 1 and len(losses) == N - 1
    assert _live_successors(container) <= 1


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
@pytest.mark.parametrize("settings_overrides", [{"refresh_grace_seconds": 0}])
def test_rotation_waits_for_a_revocation_holding_the_grant_row(container: Services) -> None:
    """PostgreSQL row lock: a revocation that has updated the grant row (not yet committed) holds it; a rotation
    of that family waits for it and then rotates nothing. It never hands out tokens of a family being revoked,
    whose new access token the revocation could not have seen to deny-list."""
    from idp.store.grants_repo import SqlGrantStore

    web, grant, token = _family(container)
    now = container.clock.now()
    outcome: list[object] = []

    def mint(grant, scope):  # type: ignore[no-untyped-def]
        return Minted(response={"access_token": "x"}, at_jti="j-new", at_exp=now + 60)

    def rotate() -> None:
        try:
            outcome.append(container.grants.rotate(token, client_id=web.client_id, scope=None, mint=mint))
        except InvalidGrant as exc:
            outcome.append(exc)

    store = SqlGrantStore(container.sessions, container.audit, container.deny_store)
    rotation = threading.Thread(target=rotate)
    with store.transaction() as tx:
        assert [g.id for g in tx.revoke(now=now, reason="admin", grant_id=grant.id)] == [grant.id]
        rotation.start()
        _until_waiting_on_a_lock(container, rotation)
        assert rotation.is_alive(), outcome  # it waits on the lock rather than rotating past it
    rotation.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], InvalidGrant), outcome
    with container.sessions() as s:  # only the original row, never rotated: no successor was written
        rows = s.scalars(select(RefreshTokenRow).where(RefreshTokenRow.grant_id == grant.id)).all()
        assert [r.rotated_at for r in rows] == [None]


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_revocation_by_token_deny_lists_the_token_of_a_rotation_it_waited_for(container: Services) -> None:
    """The one-statement revocation (PostgreSQL) against a rotation that holds the grant row: the statement
    waits, and the successor's access token, outside its snapshot, is still deny-listed."""
    from idp.store.grants_repo import _ROTATE_PG, SqlGrantStore
    from idp.tokens.refresh import DenyTerms

    web, grant, token = _family(container)
    now = container.clock.now()
    store = SqlGrantStore(container.sessions, container.audit, container.deny_store)
    digest = container.grants._digester.digest(token)
    found = store.find(digest)
    assert found is not None
    outcome: list[object] = []

    def revoke() -> None:
        terms = DenyTerms(leeway=60.0, reason="revoked by client", actor="client")
        outcome.append(
            store.revoke_token_family(
                digest, client_id=web.client_id, now=now, reason="revoked by client", actor="client", deny=terms
            )
        )

    raw = container.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(_ROTATE_PG, {
            "id": "successor", "grant_id": grant.id, "digest": b"d" * 32, "scope": "openid offline_access",
            "created_at": now, "idle_expires_at": now + 600, "at_jti": "j-new", "at_exp": now + 60,
            "old_id": found[0].id, "now": now, "sealed": None,
        })  # fmt: skip
        assert cur.rowcount == 1
        revocation = threading.Thread(target=revoke)
        revocation.start()
        _until_waiting_on_a_lock(container, revocation)
        assert revocation.is_alive(), outcome  # it waits for the rotation's lock
        raw.commit()
    finally:
        raw.close()
    revocation.join(30)
    assert len(outcome) == 1 and outcome[0] is not None
    revoked, batches = outcome[0]  # type: ignore[misc]
    assert [g.id for g in revoked] == [grant.id]
    assert [[e.value for e in batch] for batch in batches] == [["j0"], ["j-new"]]  # the successor's: after
    _, live = container.deny_store.live(now)
    assert sorted(e.value for e in live if e.kind == "jti") == ["j-new", "j0"]
