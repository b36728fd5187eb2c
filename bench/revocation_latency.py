"""Revocation-to-rejection latency: revoke a token at the IdP, time until an idp.resource API answers 401.

    python -m bench.revocation_latency [--n 200] [--backend embedded|postgres] [--path api|cli|local]

The IdP runs under uvicorn on a loopback port (one process, real clock); the API is
examples/resource_server.py in this process, following the IdP's deny-list stream as a
client registered with the ``deny-list:read`` scope.
Each round mints a fresh token, checks the API accepts it, then starts the clock,
revokes the token's ``jti`` and polls the API (every 1 ms) until it answers 401.

* ``api``: ``POST /admin/deny-list`` with an idp:admin token (the admin API).
* ``cli``: what ``idp deny jti`` does, from another container (another process's view:
  it reaches the IdP through Redis pub/sub with PostgreSQL+Redis, through the SQL
  version poll, IDP_DENYLIST_SYNC_SECONDS, with the embedded store).
* ``local``: ``c.denylist.deny`` inside the IdP process (logout, refresh reuse).

``run()`` returns {"p50_ms", "p90_ms", "p99_ms", "max_ms", ...} for bench.run. Goal: p99 <= 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

ISSUER = "https://idp.bench"
API = "https://api.bench"


def _settings(backend: str, tmp: Path, db_url: str | None) -> Any:
    from idp.config import Settings

    values: dict[str, Any] = {
        "issuer": ISSUER,
        "kek": base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode(),
        "kek_file": tmp / "kek",
        "data_dir": tmp,
        "demo": False,
        "log_level": "WARNING",
    }
    if backend == "postgres":
        values["database_url"] = db_url
        values["redis_url"] = os.environ.get("IDP_TEST_REDIS", "redis://127.0.0.1:6379/0")
        values["redis_prefix"] = f"bench{secrets.token_hex(3)}:"
    else:
        values["database_url"] = f"sqlite:///{tmp / 'idp.sqlite3'}"
    return Settings(**values)


@contextlib.contextmanager
def _database(backend: str) -> Any:
    if backend != "postgres":
        yield None
        return
    import psycopg

    admin = os.environ.get("IDP_TEST_PG", "postgresql://root@127.0.0.1:5432/test")
    name = f"idp_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def _stack(backend: str) -> AsyncIterator[tuple[Any, Any, httpx.AsyncClient, str]]:
    """(container, settings, api client, idp url): IdP under uvicorn + the example API following it."""
    from asgi_lifespan import LifespanManager

    from examples.resource_server import create_app as create_api
    from idp.app import create_app
    from idp.resource import ResourceProtector
    from idp.services import build_services
    from idp.store.db import make_engine, upgrade
    from tests.integration.live_server import LiveServer

    with tempfile.TemporaryDirectory() as tmp, _database(backend) as db_url:
        settings = _settings(backend, Path(tmp), db_url)
        engine = make_engine(settings.sqlalchemy_url)
        upgrade(engine)
        engine.dispose()
        c = build_services(settings)
        server = LiveServer(create_app(services=c), before_stop=lambda: c.denylist_feed.close())
        await asyncio.to_thread(server.start)
        # The API reads the deny-list feed as its own client, registered with the deny-list:read scope.
        reader, secret = c.clients.create(name="bench-api", kind="service", scope="deny-list:read", audience=API)
        protector = ResourceProtector(
            issuer=ISSUER, audience=API, base_url=server.url, client=(reader.client_id, secret or "")
        )
        try:
            async with LifespanManager(create_api(protector)) as manager:
                transport = httpx.ASGITransport(app=manager.app)  # type: ignore[arg-type]
                async with httpx.AsyncClient(transport=transport, base_url=API) as api:
                    yield c, settings, api, server.url
        finally:
            await asyncio.to_thread(server.stop)
            c.close()


def _token(c: Any, jti: str) -> str:
    from idp.tokens import jwt

    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "u-bench", "aud": API, "client_id": "c-bench", "iat": now, "exp": now + 600,
              "jti": jti, "scope": "api:read"}  # fmt: skip
    return jwt.sign(c.keyring, c.settings.access_token_alg, "at+jwt", claims)


def _admin_token(c: Any) -> str:
    from idp.tokens import jwt

    client, _ = c.clients.create(name="bench-ops", kind="service", scope="idp:admin", audience=f"{ISSUER}/admin")
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": client.client_id, "aud": f"{ISSUER}/admin", "client_id": client.client_id,
              "iat": now, "exp": now + 3600, "jti": secrets.token_urlsafe(9), "scope": "idp:admin"}  # fmt: skip
    return jwt.sign(c.keyring, c.settings.access_token_alg, "at+jwt", claims)


async def measure(n: int, backend: str, path: str) -> dict[str, Any]:
    from idp.services import build_services

    async with _stack(backend) as (c, settings, api, idp_url):
        other = build_services(settings) if path == "cli" else None
        admin = {"authorization": f"Bearer {_admin_token(c)}"} if path == "api" else {}
        latencies: list[float] = []
        polls = 0
        async with httpx.AsyncClient(base_url=idp_url) as idp:
            for i in range(n + 5):  # the first 5 warm up
                jti = f"bench-{i}-{secrets.token_hex(4)}"
                headers = {"authorization": f"Bearer {_token(c, jti)}"}
                assert (await api.get("/me", headers=headers)).status_code == 200
                if path == "cli":  # arrive at a random point of the IdP's SQL poll, as real revocations do
                    await asyncio.sleep(random.uniform(0, settings.denylist_sync_seconds))
                started = time.perf_counter()
                if path == "api":
                    r = await idp.post("/admin/deny-list", json={"kind": "jti", "value": jti, "reason": "bench"},
                                       headers=admin)  # fmt: skip
                    assert r.status_code == 201, r.text
                elif path == "cli":
                    await asyncio.to_thread(other.denylist.deny, "jti", jti, reason="bench", actor="cli:bench")  # type: ignore[union-attr]
                else:
                    await asyncio.to_thread(c.denylist.deny, "jti", jti, reason="bench", actor="bench")
                while (await api.get("/me", headers=headers)).status_code != 401:
                    polls += 1
                    if time.perf_counter() - started > 5:
                        raise RuntimeError(f"round {i}: not refused within 5 s")
                    await asyncio.sleep(0.001)
                if i >= 5:
                    latencies.append((time.perf_counter() - started) * 1000)
        if other is not None:
            other.close()
    return {
        "backend": backend,
        "path": path,
        **latency_summary(latencies),
        "sync_seconds": settings.denylist_sync_seconds,
        "goal_p99_ms": 1000,
    }


def latency_summary(latencies_ms: list[float]) -> dict[str, Any]:
    """n, p50, p90, p99 and max of latencies in milliseconds, rounded to 0.1 ms."""
    q = statistics.quantiles(latencies_ms, n=100, method="inclusive")
    return {
        "n": len(latencies_ms),
        "p50_ms": round(statistics.median(latencies_ms), 1),
        "p90_ms": round(q[89], 1),
        "p99_ms": round(q[98], 1),
        "max_ms": round(max(latencies_ms), 1),
    }


def run(n: int = 200, backend: str = "embedded", path: str = "api") -> dict[str, Any]:
    return asyncio.run(measure(n, backend, path))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m bench.revocation_latency", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=200, help="revocations to time (after 5 warm-up rounds)")
    p.add_argument("--backend", choices=["embedded", "postgres"], default="embedded")
    p.add_argument("--path", choices=["api", "cli", "local"], default="api")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    result = run(args.n, args.backend, args.path)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"revocation -> 401 at the API ({result['backend']}, via {result['path']}, n={result['n']}): "
            f"p50 {result['p50_ms']} ms, p90 {result['p90_ms']} ms, p99 {result['p99_ms']} ms, "
            f"max {result['max_ms']} ms (goal p99 <= 1000 ms)"
        )
    return result


if __name__ == "__main__":
    main()
