"""Redis dies mid-load and comes back (a private redis-server started by the test).

While it is down, what needs it (authorization codes, pending interactions, login
throttling) answers 503 ``temporarily_unavailable`` with ``Retry-After``; what lives in
SQL (refresh, client credentials, userinfo, introspection, sessions) keeps working.
Nothing durable was only in Redis: it restarts empty, and every refresh token, login
session and consent still works. The app recovers by itself, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from idp.clock import FrozenClock
from idp.config import Settings
from idp.services import Services, build_services
from tests.oauthkit import (
    auth_params,
    exchange,
    get_code,
    make_user,
    pkce_pair,
    refresh,
    service_client,
    sign_in_fast,
    tokens_for,
    web_client,
)
from tests.pagekit import PASSWORD, SAME_ORIGIN, field
from tests.robustness.conftest import open_site
from tests.robustness.kit import ISSUER, assert_sane, describe
from tests.robustness.services import fresh_database, new_kek, redis_server

pytestmark = [pytest.mark.postgres, pytest.mark.timing, pytest.mark.timeout(120)]  # recovery windows
HTML = {"accept": "text/html,application/xhtml+xml"}


@contextlib.contextmanager
def container_on(db: str, redis_url: str, tmp_path: Path) -> Iterator[Services]:
    """A container over the test's own database and Redis server, closed afterwards."""
    settings = Settings(issuer=ISSUER, database_url=db, redis_url=redis_url, redis_prefix="fault:", kek=new_kek(),
                        kek_file=tmp_path / "kek", data_dir=tmp_path, demo=False)  # fmt: skip
    c = build_services(settings, clock=FrozenClock(float(int(time.time()))))
    try:
        yield c
    finally:
        c.close()


def assert_503(r: httpx.Response) -> None:
    assert r.status_code == 503, describe(r)
    assert r.headers.get("retry-after"), describe(r)
    if r.headers.get("content-type", "").startswith("application/json"):
        assert r.json()["error"] == "temporarily_unavailable", describe(r)


async def until_ok(probe: object, seconds: float = 20.0) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        r: httpx.Response = await probe()  # type: ignore[operator]
        assert_sane(r) if r.status_code != 503 else None
        if r.status_code < 400 or time.monotonic() > deadline:
            return r
        await asyncio.sleep(0.2)


async def test_redis_outage_answers_503_keeps_sql_paths_and_recovers(tmp_path: Path) -> None:
    with fresh_database() as db, redis_server(tmp_path) as redis, container_on(db, redis.url, tmp_path) as c:
        async with open_site(c) as site:
            http = site.http
            web, secret = web_client(c)
            svc, svc_secret = service_client(c)
            user = make_user(c)
            t0 = await tokens_for(c, http, web, secret, user, scope="openid offline_access")
            held = t0["refresh_token"]
            code, verifier, _ = await get_code(http, web)  # issued before the outage, lost with Redis

            redis.stop()

            # Needs Redis: 503, never 500.
            assert_503(await exchange(http, web, secret, code, verifier))
            assert_503(await http.get("/authorize", params=auth_params(web, pkce_pair()[1]), headers=HTML))
            assert_503(await http.get("/authorize", params=auth_params(web, pkce_pair()[1])))
            assert (await http.get("/readyz")).status_code == 503
            login = await http.get("/login")
            assert login.status_code in (200, 303, 503), describe(login)
            # SQL only: keeps working through the outage.
            r = await refresh(http, web, secret, held)
            assert r.status_code == 200, describe(r)
            held = r.json()["refresh_token"]
            at = r.json()["access_token"]
            r = await http.get("/userinfo", headers={"authorization": f"Bearer {at}"})
            assert r.status_code == 200, describe(r)
            cc_form = {"grant_type": "client_credentials"}
            cc = await http.post("/token", data=cc_form, auth=(svc.client_id, svc_secret))
            assert cc.status_code == 200, describe(cc)
            assert (await http.get("/jwks.json")).status_code == 200
            assert (await http.get("/account")).status_code == 200  # the login session is in SQL

            redis.start()  # empty: everything that was in Redis is gone

            r = await until_ok(lambda: http.get("/readyz"))
            assert r.status_code == 200, describe(r)
            # Recovered without a restart: a whole new code flow works.
            r = await until_ok(lambda: http.get("/authorize", params=auth_params(web, pkce_pair()[1])))
            assert r.status_code == 302 and "code=" in r.headers["location"], describe(r)
            fresh = await tokens_for(c, http, web, secret, user, scope="openid offline_access")
            assert fresh["access_token"]
            # Durable state survived Redis losing everything.
            r = await refresh(http, web, secret, held)
            assert r.status_code == 200, describe(r)
            assert (await http.get("/account")).status_code == 200
            # The code issued before the crash is gone with Redis: refused cleanly, not a 500.
            r = await exchange(http, web, secret, code, verifier)
            assert r.status_code == 400 and r.json()["error"] == "invalid_grant", describe(r)
            # Login (throttle counters in Redis) works again.
            form = await http.get("/login", params={"switch": "1"})
            data = {"csrf": field(form.text, "csrf"), "username": "alice", "password": PASSWORD}
            r = await http.post("/login", data=data, headers=SAME_ORIGIN)
            assert r.status_code == 303, describe(r)


async def test_login_during_redis_outage_is_503_not_500(tmp_path: Path) -> None:
    with fresh_database() as db, redis_server(tmp_path) as redis, container_on(db, redis.url, tmp_path) as c:
        async with open_site(c) as site:
            make_user(c)
            form = await site.http.get("/login")
            redis.stop()
            data = {"csrf": field(form.text, "csrf"), "username": "alice", "password": PASSWORD}
            r = await site.http.post("/login", data=data, headers=SAME_ORIGIN)
            assert_503(r)
            assert r.headers["content-type"].startswith("text/html")
            redis.start()
            r = await until_ok(lambda: site.http.post("/login", data=data, headers=SAME_ORIGIN))
            assert r.status_code == 303, describe(r)


async def test_redis_crash_mid_load_gives_only_503s_and_load_recovers(tmp_path: Path) -> None:
    with fresh_database() as db, redis_server(tmp_path) as redis, container_on(db, redis.url, tmp_path) as c:
        async with open_site(c) as site:
            http = site.http
            web, secret = web_client(c)
            svc, svc_secret = service_client(c)
            user = make_user(c)
            sign_in_fast(c, http, user)
            seen: list[tuple[str, int, float]] = []
            stop = asyncio.Event()

            async def code_flow() -> None:
                while not stop.is_set():
                    verifier, challenge = pkce_pair()
                    r = await http.get("/authorize", params=auth_params(web, challenge))
                    seen.append(("authorize", r.status_code, time.monotonic()))
                    if r.status_code == 302:
                        code = dict(x.split("=", 1) for x in r.headers["location"].split("?", 1)[1].split("&"))
                        r = await exchange(http, web, secret, code["code"], verifier)
                        seen.append(("exchange", r.status_code, time.monotonic()))
                    await asyncio.sleep(0.01)

            async def machine() -> None:
                while not stop.is_set():
                    r = await http.post("/token", data={"grant_type": "client_credentials"},
                                        auth=(svc.client_id, svc_secret))  # fmt: skip
                    seen.append(("client_credentials", r.status_code, time.monotonic()))
                    await asyncio.sleep(0.01)

            tasks = [asyncio.create_task(f()) for f in (code_flow, code_flow, machine)]
            await asyncio.sleep(0.5)
            redis.stop()
            down = time.monotonic()
            await asyncio.sleep(1.0)
            redis.start()
            up = time.monotonic()
            await asyncio.sleep(2.0)
            stop.set()
            await asyncio.gather(*tasks)

            bad = [(what, status) for what, status, _ in seen if status >= 500 and status != 503]
            assert not bad, bad
            assert all(s == 200 for what, s, _ in seen if what == "client_credentials"), "SQL-only path degraded"
            assert any(s == 503 for _, s, t in seen if down <= t <= up), "the outage was not noticed"
            tail = [s for what, s, t in seen if t > up + 1.0]
            assert tail and all(s in (200, 302) for s in tail), Counter(tail)
