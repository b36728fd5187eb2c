"""Races, on both backends: one refresh token, one code, one keyring, one throttled account.

Concurrency comes from the server's own threadpool (requests gathered on the in-process
transport) or from plain threads calling the core, and always hits the real storage.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from idp.config import Settings
from idp.errors import InvalidGrant
from idp.services import Services, build_services
from idp.store.models import DenyEntryRow, GrantRow, RefreshTokenRow, SigningKeyRow
from idp.tokens.refresh import GrantRecord, Minted
from idp.users.throttle import LoginThrottle
from tests.oauthkit import exchange, get_code, make_user, refresh, sign_in_fast, tokens_for, web_client
from tests.pagekit import PASSWORD, SAME_ORIGIN, field
from tests.robustness.kit import Site, assert_sane, need


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    # Grace 0: a repeated refresh is reuse, never "the same successor again" (RFC 9700 §4.14.2).
    return {"refresh_grace_seconds": 0, "login_max_failures": 5, "login_lockout_seconds": 60}


def statuses(results: list[httpx.Response]) -> Counter[int]:
    for r in results:
        assert_sane(r)
    return Counter(r.status_code for r in results)


async def test_50_parallel_refreshes_of_one_token_have_exactly_one_winner(container: Services, site: Site) -> None:
    need(site, "/token", "POST")
    c, http = container, site.http
    web, secret = web_client(c)
    t0 = await tokens_for(c, http, web, secret, make_user(c), scope="openid offline_access")

    results = await asyncio.gather(*[refresh(http, web, secret, t0["refresh_token"]) for _ in range(50)])

    counts = statuses(results)
    assert counts[200] == 1, counts  # RFC 9700 §4.14.2: one rotation per token
    assert counts[400] == 49, counts
    assert all(r.json()["error"] == "invalid_grant" for r in results if r.status_code == 400)
    with c.sessions() as s:
        grant_id = s.scalars(select(GrantRow.id)).one()
        rows = s.scalar(select(func.count()).select_from(RefreshTokenRow).where(RefreshTokenRow.grant_id == grant_id))
        revoked = s.scalar(select(GrantRow.revoked_at).where(GrantRow.id == grant_id))
    assert rows == 2, "one successor, never two (no double issue, no half rotation)"
    # The 49 losers presented a rotated token: reuse, so the family (and the winner's successor) is revoked.
    assert revoked is not None
    winner = next(r for r in results if r.status_code == 200).json()
    assert (await refresh(http, web, secret, winner["refresh_token"])).status_code == 400


async def test_20_parallel_redemptions_of_one_code_issue_one_grant(container: Services, site: Site) -> None:
    """Exactly one redemption wins the code; the other 19 are replays (RFC 6749 §4.1.2), which revoke what the
    winner was issued, so the winner's client may see its 200 revoked or, while still issuing, a 400."""
    need(site, "/token", "POST")
    c, http = container, site.http
    web, secret = web_client(c)
    sign_in_fast(c, http, make_user(c))
    code, verifier, _ = await get_code(http, web, scope="openid offline_access")

    results = await asyncio.gather(*[exchange(http, web, secret, code, verifier) for _ in range(20)])

    counts = statuses(results)
    assert counts[200] <= 1 and counts[200] + counts[400] == 20, counts
    assert all(r.json()["error"] == "invalid_grant" for r in results if r.status_code == 400)
    with c.sessions() as s:
        grants = s.scalars(select(GrantRow)).all()
    assert len(grants) == 1, "the code was redeemed once"
    assert grants[0].revoked_at is not None, "the replays revoked what the code issued"
    for r in results:
        if r.status_code == 200:
            assert (await refresh(http, web, secret, r.json()["refresh_token"])).status_code == 400


async def test_one_redemption_without_replays_succeeds(container: Services, site: Site) -> None:
    """The control for the race above: the same exchange alone gets its tokens."""
    need(site, "/token", "POST")
    web, secret = web_client(container)
    sign_in_fast(container, site.http, make_user(container))
    code, verifier, _ = await get_code(site.http, web)
    assert (await exchange(site.http, web, secret, code, verifier)).status_code == 200


def _parallel(n: int, fn: Any, *args: Any) -> list[Any]:
    barrier = threading.Barrier(n)

    def run(i: int) -> Any:
        barrier.wait()
        return fn(i, *args)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_rotation_racing_revocation_leaves_no_live_access_token_undenied(container: Services) -> None:
    """Rotation and revocation of one family at once, many times: whichever wins, every access token the
    family has issued that is still live ends up deny-listed, and a rotation never lands on a revoked grant."""
    c = container
    web, _ = web_client(c)
    user = make_user(c)
    escaped, rotated_first = [], 0
    for round_no in range(25):
        grant, token = c.grants.start(
            client_id=web.client_id, user_id=user.id, sid=None, scope="openid offline_access", audience="api",
            auth_time=None, acr=None, amr=[], code_digest=None, at_jti=f"r{round_no}-0",
            at_exp=c.clock.now() + 600, with_refresh=True,
        )  # fmt: skip

        def mint(g: GrantRecord, scope: str, n: int = round_no) -> Minted:
            return Minted(response={"access_token": "x"}, at_jti=f"r{n}-1", at_exp=c.clock.now() + 600)

        def act(i: int, token: str = token, grant_id: str = grant.id) -> bool:
            if i == 0:
                try:
                    c.grants.rotate(token, client_id=web.client_id, scope=None, mint=mint)
                    return True
                except InvalidGrant:
                    return False
            return c.grants.revoke_grant(grant_id, actor="test", reason="race")

        rotated, revoked = _parallel(2, act)
        assert revoked, "the revocation always finds the grant live: a rotation never revokes it"
        rotated_first += rotated
        with c.sessions() as s:
            jtis = set(s.scalars(select(RefreshTokenRow.at_jti).where(RefreshTokenRow.grant_id == grant.id)))
            denied = set(s.scalars(select(DenyEntryRow.value).where(DenyEntryRow.kind == "jti")))
        assert len(jtis) == 1 + rotated
        escaped += sorted(jtis - denied)
    assert escaped == [], "access tokens of a revoked family that no deny-list entry covers"


def _keyring_state(c: Services) -> list[tuple[str, str, str]]:
    with c.sessions() as s:
        return sorted((r.alg, r.state, r.kid) for r in s.scalars(select(SigningKeyRow)))


def test_parallel_rotations_from_two_instances_leave_one_consistent_keyring(
    container: Services, settings: Settings
) -> None:
    """Two containers over one database (two instances) rotate and tick at once."""
    a = container
    b = build_services(settings, clock=a.clock)
    try:
        a.keyring.tick()
        algs = a.keyring.policy.algorithms

        def act(i: int) -> None:
            ring = (a, b)[i % 2].keyring
            if i % 4 == 0:
                ring.tick()
            else:
                ring.rotate(algs[i % len(algs)])

        _parallel(12, act)
        for alg in algs:  # every algorithm has exactly one pending key, whoever asked for it
            states = [state for al, state, _ in _keyring_state(a) if al == alg]
            assert states.count("active") == 1 and states.count("next") == 1, (alg, states)

        a.clock.advance(a.keyring.policy.publish_lead + 1)
        _parallel(8, lambda i: (a, b)[i % 2].keyring.tick())  # both instances promote the next keys at once
        rows = _keyring_state(a)
        for alg in algs:
            states = [state for al, state, _ in rows if al == alg]
            assert states.count("active") == 1 and states.count("next") == 0, (alg, states)
            assert states.count("retired") == 1, (alg, states)
        a.keyring.refresh(force=True)
        b.keyring.refresh(force=True)
        assert a.keyring.rows() and sorted(r.kid for r in a.keyring.rows()) == sorted(r.kid for r in b.keyring.rows())
        for alg in algs:
            assert a.keyring.signer(alg)[0] == b.keyring.signer(alg)[0], "both instances sign with the same key"
        assert a.jwks.current().body == b.jwks.current().body
    finally:
        b.close()


def test_parallel_attempts_admit_at_most_the_threshold(container: Services) -> None:
    throttle: LoginThrottle = container.throttle
    n = 60

    def attempt(i: int) -> bool:
        got = throttle.begin("alice", f"10.0.0.{i}")
        if isinstance(got, int):  # refused before any verification
            return False
        got.failure()
        return True

    admitted = _parallel(n, attempt)
    # NIST SP 800-63B §5.2.2 counts attempts, not completed ones: however concurrent, no more get through.
    assert sum(admitted) == throttle.max_failures
    assert throttle.retry_after("alice", "10.9.9.9") is not None
    assert isinstance(throttle.begin("alice", "10.9.9.9"), int)


async def test_parallel_wrong_passwords_over_http_lock_the_account(container: Services, site: Site) -> None:
    c, http = container, site.http
    make_user(c)
    form = await http.get("/login")
    token = field(form.text, "csrf")

    async def attempt(password: str) -> httpx.Response:
        data = {"csrf": token, "username": "alice", "password": password}
        return await http.post("/login", data=data, headers=SAME_ORIGIN)

    results = await asyncio.gather(*[attempt(f"wrong-{i}") for i in range(12)])
    counts = statuses(results)
    assert counts[400] + counts[429] == 12, counts
    assert counts[429] >= 12 - c.settings.login_max_failures + 1, counts  # every failure from the 5th on counted
    r = await attempt(PASSWORD)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0  # locked, even for the right password
    c.clock.advance(3600 * 24)  # a new window: the lock and the counters are gone
    token = field((await http.get("/login")).text, "csrf")  # the old form expired meanwhile
    r = await attempt(PASSWORD)
    assert r.status_code == 303, r.status_code
