"""SQL statements and CPU per deny-list write when two processes write in turn (the 2-worker revocation pattern).

Deterministic where the revocation row's throughput is noisy: two containers (two "workers") on one
database, in this process, one thread. Each step: worker A writes an entry, then worker B writes one
(B is a version behind: A's change has not reached it), then each hears the other's published SET, as
its pub/sub subscriber would hand it over (``DenyFeed._catch_up``). Counted for B: SQL statements and
thread CPU per step (its write, its catch-up with A's SET, the catch-up of A with B's).

    python -m bench.denylist_gap [--backend postgres|embedded] [-n 300]
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event

from idp.clock import SystemClock
from idp.config import Settings, load_settings
from idp.denylist.entries import DenyChange
from idp.denylist.feed import DenyFeed
from idp.services import Services, build_services
from idp.store.db import make_engine, upgrade

PG_ADMIN = "postgresql://root@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/0"


def _settings(url: str, redis_url: str, prefix: str, data: Path, kek: str) -> Settings:
    return Settings(
        issuer="http://127.0.0.1:9",
        database_url=url,
        redis_url=redis_url,
        redis_prefix=prefix,
        kek=kek,
        kek_file=data / "kek",
        data_dir=data,
        demo=False,
    )  # type: ignore[call-arg]


def _catch_up(c: Services, tokens: list[str]) -> None:
    DenyFeed._catch_up(type("Feed", (), {"_dl": c.denylist})(), "\n".join(tokens))  # type: ignore[arg-type]


def _signed(c: Services, entry: Any) -> str:
    return c.denylist.signed(DenyChange(entry.id, entry=entry))


def measure(a: Services, b: Services, n: int) -> dict[str, float]:
    statements = 0

    def count(*_: Any) -> None:
        nonlocal statements
        statements += 1

    event.listen(b.engine, "before_cursor_execute", count)
    now = time.time()
    cpu = 0.0
    for i in range(n):
        ea = a.denylist.deny("jti", f"a{i}-{secrets.token_hex(4)}", reason="bench", actor="bench", until=now + 600)
        t0 = time.thread_time()
        eb = b.denylist.deny("jti", f"b{i}-{secrets.token_hex(4)}", reason="bench", actor="bench", until=now + 600)
        _catch_up(b, [_signed(a, ea)])  # A's SET reaches B late: B read that version with its own write
        cpu += time.thread_time() - t0
        _catch_up(a, [_signed(b, eb)])
    event.remove(b.engine, "before_cursor_execute", count)
    assert a.denylist.version == b.denylist.version == 2 * n
    return {"n": n, "statements_per_write": round(statements / n, 2), "cpu_us_per_write": round(cpu / n * 1e6)}


def run(backend: str = "postgres", n: int = 300) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="idp-gap-"))
    kek = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    name = ""
    try:
        if backend == "postgres":
            import psycopg

            name = f"idp_gapbench_{secrets.token_hex(4)}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            url, redis_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", REDIS
        else:
            url, redis_url = f"sqlite:///{data / 'idp.sqlite3'}", ""
        engine = make_engine(load_settings(database_url=url).sqlalchemy_url)
        upgrade(engine)
        engine.dispose()
        settings = _settings(url, redis_url, f"idpgap:{secrets.token_hex(4)}:", data, kek)
        a = build_services(settings, clock=SystemClock())
        a.keyring.tick()
        b = build_services(settings, clock=SystemClock())
        try:
            for c in (a, b):
                c.denylist.is_denied({"sub": "nobody", "iat": 0})  # loads the snapshot
            return {"backend": backend, **measure(a, b, n)}
        finally:
            a.close()
            b.close()
    finally:
        shutil.rmtree(data, ignore_errors=True)
        if name:
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--backend", default="postgres", choices=("postgres", "embedded"))
    p.add_argument("-n", type=int, default=300)
    args = p.parse_args()
    print(json.dumps(run(args.backend, args.n)))


if __name__ == "__main__":
    main()
