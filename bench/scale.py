"""Cost at scale: refresh with 1M stored refresh families, sign-in with 100k users (PostgreSQL + Redis).

    python -m bench.scale [--families 1000000] [--users 100000] [-n 50]

One idp worker on a fresh database. Each flow is measured twice, on the tables as the bench
fixtures leave them and after bulk seeding (``INSERT ... SELECT generate_series``, one statement per
table, then ``ANALYZE``): ``families`` grants with one live refresh token each, ``users`` users
(sharing one password hash: seeding pays no Argon2id). Per flow and size: the server's CPU per
request (the whole process tree, ``/proc``) and the median latency of ``n`` sequential requests
(refresh: a chain, each response's token the next request's; sign-in: ``POST /login`` of the
bench user). ``*_ratio`` is the seeded figure over the empty one: the target is that cost does not
grow with the table (about 1.0; the index lookups add a level or two of a B-tree).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
import psycopg

from bench import flows
from bench.procstat import cpu_seconds
from bench.server import WORK, IdpServer, start_idp

SEED_GRANTS = """
    INSERT INTO grants (id, client_id, user_id, sid, scope, audience, auth_time, acr, amr, code_digest,
                        created_at, absolute_expires_at)
    SELECT 'seed-g-' || g, %(client_id)s, %(user_id)s, NULL, 'openid offline_access', '', NULL, NULL, '[]', NULL,
           %(now)s, %(now)s + 2592000
    FROM generate_series(1, %(n)s) AS g
"""
SEED_TOKENS = """
    INSERT INTO refresh_tokens (id, grant_id, digest, scope, created_at, idle_expires_at, at_jti, at_exp, grace_uses)
    SELECT 'seed-r-' || g, 'seed-g-' || g, decode(md5('a' || g) || md5('b' || g), 'hex'), 'openid offline_access',
           %(now)s, %(now)s + 86400, 'seed-j-' || g, %(now)s + 600, 0
    FROM generate_series(1, %(n)s) AS g
"""
SEED_USERS = """
    INSERT INTO users (id, username, email, email_verified, name, password_hash, disabled, created_at, updated_at)
    SELECT 'seed-u-' || g, 'seed-user-' || g, 'seed' || g || '@example.test', false, NULL,
           (SELECT password_hash FROM users WHERE id = %(user_id)s), false, %(now)s, %(now)s
    FROM generate_series(1, %(n)s) AS g
"""


def _pg_url(srv: IdpServer) -> str:
    return srv.env()["IDP_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")


def seed(srv: IdpServer, families: int, users: int) -> dict[str, float]:
    """Bulk rows in three statements; returns the seconds each took."""
    out: dict[str, float] = {}
    with psycopg.connect(_pg_url(srv), autocommit=True) as conn:
        params = {"client_id": srv.info["web"]["client_id"], "user_id": srv.info["user"]["sub"], "now": time.time()}
        for name, sql, n in (("grants", SEED_GRANTS, families), ("refresh_tokens", SEED_TOKENS, families),
                             ("users", SEED_USERS, users)):  # fmt: skip
            t = time.perf_counter()
            conn.execute(sql, params | {"n": n})
            out[f"seed_{name}_s"] = round(time.perf_counter() - t, 1)
        conn.execute("ANALYZE grants, refresh_tokens, users")
    return out


def _timed(srv: IdpServer, n: int, call: Callable[[int], httpx.Response], ok: tuple[int, ...]) -> dict[str, float]:
    call(-1)  # warm
    latencies = []
    cpu0 = cpu_seconds(srv.pids())
    for i in range(n):
        t = time.perf_counter()
        r = call(i)
        latencies.append(time.perf_counter() - t)
        if r.status_code not in ok:
            raise RuntimeError(f"{r.request.url.path}: {r.status_code} {r.text[:160]}")
    cpu = cpu_seconds(srv.pids()) - cpu0
    return {"cpu_us": round(cpu / n * 1e6), "p50_ms": round(statistics.median(latencies) * 1000, 2)}


def flows_cost(srv: IdpServer, n: int) -> dict[str, float]:
    paths = flows.endpoints(srv)
    web = srv.info["web"]
    headers = {"content-type": flows.FORM_CT, "authorization": flows.basic(web)}
    session = flows.idp_login(srv)
    with httpx.Client(base_url=srv.base_url, timeout=30) as http:
        code = flows.idp_code(srv, paths, session)
        token = [http.post(paths["token"], content=flows.exchange_body(srv, code), headers=headers).json()]

        def refresh(i: int) -> httpx.Response:
            body = f"grant_type=refresh_token&refresh_token={token[0]['refresh_token']}"
            r = http.post(paths["token"], content=body, headers=headers)
            if r.status_code == 200:
                token[0] = r.json()
            return r

        out = {f"refresh_{k}": v for k, v in _timed(srv, n, refresh, (200,)).items()}
        forms = [flows.login_post_args(srv, *flows.login_form(http, srv.base_url)) for _ in range(n + 1)]

        def login(i: int) -> httpx.Response:
            body, login_headers = forms[i]
            return http.post("/login", content=body, headers=login_headers)

        out |= {f"login_{k}": v for k, v in _timed(srv, n, login, (302, 303)).items()}
    return out


def run(quick: bool = False, families: int = 1_000_000, users: int = 100_000, n: int = 50) -> dict[str, Any]:
    if quick:
        families, users, n = 10_000, 5_000, 10
    srv = start_idp("scale", backend="postgres", workers=1, run_dir=WORK / "scale")
    try:
        empty = flows_cost(srv, n)
        out: dict[str, Any] = {"families": families, "users": users, "n": n} | seed(srv, families, users)
        seeded = flows_cost(srv, n)
    finally:
        srv.stop()
    for key, value in empty.items():
        out[f"{key}_empty"] = value
        out[f"{key}_seeded"] = seeded[key]
    for flow in ("refresh", "login"):
        out[f"{flow}_cpu_ratio"] = round(seeded[f"{flow}_cpu_us"] / max(empty[f"{flow}_cpu_us"], 1), 2)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--families", type=int, default=1_000_000)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("-n", type=int, default=50)
    args = p.parse_args(argv)
    result = run(families=args.families, users=args.users, n=args.n)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
