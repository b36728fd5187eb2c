"""PostgreSQL connections killed with ``pg_terminate_backend`` while refresh families rotate.

A client that gets a 503 (or loses the answer) retries with the token it holds, as a
real client does; the grace window turns a retry of a rotation that did commit into
"the same successor again". Afterwards, per family: no answer but 200/503, the
refresh chain in SQL is one line (no token lost, none issued twice, no row rotated
without its successor), the last token the client holds works, nothing was revoked,
and the pool serves every request again without a restart.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select, text

from idp.clock import FrozenClock
from idp.config import Settings
from idp.services import Services, build_services
from idp.store.models import GrantRow, RefreshTokenRow
from tests.oauthkit import make_user, refresh, service_client, tokens_for, web_client
from tests.robustness.conftest import open_site
from tests.robustness.kit import ISSUER, describe
from tests.robustness.services import fresh_database, kill_connections, new_kek, redis_server

pytestmark = [pytest.mark.postgres, pytest.mark.timing, pytest.mark.timeout(180)]  # recovery windows
FAMILIES = 6


def chain_problems(c: Services) -> list[str]:
    problems = []
    with c.sessions() as s:
        for grant in s.scalars(select(GrantRow)):
            rows = {r.id: r for r in s.scalars(select(RefreshTokenRow).where(RefreshTokenRow.grant_id == grant.id))}
            live = [r for r in rows.values() if r.rotated_at is None]
            successors = [r.successor_id for r in rows.values() if r.rotated_at is not None]
            if grant.revoked_at is not None:
                problems.append(f"{grant.id}: revoked ({grant.revoked_reason})")
            if len(live) != 1:
                problems.append(f"{grant.id}: {len(live)} live tokens")
            if len(set(successors)) != len(successors):
                problems.append(f"{grant.id}: a token has two successors")
            if any(sid not in rows for sid in successors):
                problems.append(f"{grant.id}: rotated without its successor (half rotation)")
            if len(rows) != len(successors) + 1:
                problems.append(f"{grant.id}: {len(rows)} rows, {len(successors)} rotations")
    return problems


def fault_settings(db: str, redis_url: str, tmp_path: Path) -> Settings:
    return Settings(issuer=ISSUER, database_url=db, redis_url=redis_url, redis_prefix="fault:", kek=new_kek(),
                    kek_file=tmp_path / "kek", data_dir=tmp_path, demo=False,
                    refresh_grace_seconds=30, refresh_grace_max_uses=10)  # fmt: skip


def test_idle_connections_killed_are_replaced_before_use(tmp_path: Path) -> None:
    """A restart or an idle timeout on the server side must not cost a request: the pool notices the ended
    connection at checkout and opens another, so every query after the kill succeeds. (No app runs here:
    its background sync would meet a dead connection first and hide the difference.)"""
    with fresh_database() as db, redis_server(tmp_path) as redis:
        c = build_services(fault_settings(db, redis.url, tmp_path), clock=FrozenClock(float(int(time.time()))))
        try:
            user = make_user(c)
            barrier = threading.Barrier(6)

            def read(_: int) -> int:
                barrier.wait()  # six at once: six pooled connections
                with c.sessions() as s:
                    s.execute(text("SELECT pg_sleep(0.05)"))
                return len(c.grants.grants_for_user(user.id))

            with ThreadPoolExecutor(6) as pool:
                assert list(pool.map(read, range(6))) == [0] * 6
                assert kill_connections(db) >= 6, "the pooled connections were not killed: the test proved nothing"
                time.sleep(0.3)  # the server's goodbye reaches the idle sockets
                barrier.reset()
                assert list(pool.map(read, range(6))) == [0] * 6  # no OperationalError, no 503
        finally:
            c.close()


async def test_connections_killed_mid_rotation_lose_nothing(tmp_path: Path) -> None:
    with fresh_database() as db, redis_server(tmp_path) as redis:
        c = build_services(fault_settings(db, redis.url, tmp_path), clock=FrozenClock(float(int(time.time()))))
        try:
            async with open_site(c) as site:
                http = site.http
                web, secret = web_client(c)
                svc, svc_secret = service_client(c)
                user = make_user(c)
                held = [
                    (await tokens_for(c, http, web, secret, user, scope="openid offline_access"))["refresh_token"]
                    for _ in range(FAMILIES)
                ]
                seen: Counter[int] = Counter()
                received: list[set[str]] = [set() for _ in range(FAMILIES)]
                stop = asyncio.Event()
                killing = threading.Event()
                kills: list[int] = []

                async def family(i: int) -> None:
                    while not stop.is_set():
                        r = await refresh(http, web, secret, held[i])
                        seen[r.status_code] += 1
                        if r.status_code == 200:
                            held[i] = r.json()["refresh_token"]
                            received[i].add(held[i])
                        else:
                            assert r.status_code == 503, describe(r)  # retried with the same token
                        await asyncio.sleep(0)

                async def machine() -> None:
                    while not stop.is_set():
                        r = await http.post("/token", data={"grant_type": "client_credentials"},
                                            auth=(svc.client_id, svc_secret))  # fmt: skip
                        seen[r.status_code] += 1
                        assert r.status_code in (200, 503), describe(r)
                        await asyncio.sleep(0)

                def killer() -> None:
                    while killing.is_set():
                        kills.append(kill_connections(db))
                        time.sleep(0.1)

                tasks = [asyncio.create_task(family(i)) for i in range(FAMILIES)] + [asyncio.create_task(machine())]
                await asyncio.sleep(0.3)
                killing.set()
                thread = threading.Thread(target=killer, daemon=True)
                thread.start()
                await asyncio.sleep(2.0)
                killing.clear()
                thread.join()
                await asyncio.sleep(0.5)
                stop.set()
                await asyncio.gather(*tasks)

                assert sum(kills) > 0, "nothing was killed: the test proved nothing"
                assert set(seen) <= {200, 503}, seen
                # The pool recovered: every family refreshes now, with the token its client holds.
                for i in range(FAMILIES):
                    r = await refresh(http, web, secret, held[i])
                    assert r.status_code == 200, describe(r)
                    received[i].add(r.json()["refresh_token"])
                assert chain_problems(c) == []
                with c.sessions() as s:
                    rows = len(s.scalars(select(RefreshTokenRow.id)).all())
                assert rows == FAMILIES + sum(len(r) for r in received), "every issued token was delivered once"
                print(f"\npg fault: {sum(kills)} connections killed, answers {dict(seen)}")
        finally:
            c.close()
