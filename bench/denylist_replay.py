"""What a ``Last-Event-ID: 0`` replay of the deny-list stream costs the IdP at N live entries.

    python -m bench.denylist_replay [--entries 10000] [--replays 3]

The IdP runs under uvicorn on a loopback port (embedded store, one process); the script
writes N ``jti`` entries, then opens ``GET /deny-list/events`` with ``Last-Event-ID: 0``
(authenticated as a client registered with the ``deny-list:read`` scope) ``--replays``
times and reads until it holds the current version. Per replay it reports the wall time,
the CPU time of the whole process (server and this reader) and the bytes received; the
reader parses only line boundaries, so nearly all the CPU is the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import resource
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ISSUER = "https://idp.bench"
BATCH = 1000


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _replay(url: str, auth: httpx.BasicAuth, version: int) -> tuple[float, float, int, int]:
    """(wall s, cpu s, bytes, entries) for one replay from 0 up to ``version``."""
    started, cpu = time.perf_counter(), _cpu()
    size = entries = 0
    async with (
        httpx.AsyncClient(base_url=url, timeout=60) as http,
        http.stream("GET", "/deny-list/events", headers={"last-event-id": "0"}, auth=auth) as r,
    ):
        r.raise_for_status()
        event, last_id = "", 0
        async for line in r.aiter_lines():
            size += len(line) + 1
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("id:"):
                last_id = int(line[3:])
            elif line.startswith("data:") and event == "snapshot":
                entries += len(json.loads(line[5:])["entries"])
            elif line.startswith("data:") and event == "deny":
                entries += 1
            elif line == "" and last_id >= version:
                break
    return time.perf_counter() - started, _cpu() - cpu, size, entries


async def measure(n: int, replays: int) -> dict[str, Any]:
    from idp.app import create_app
    from idp.config import Settings
    from idp.services import build_services
    from idp.store.db import make_engine, upgrade
    from tests.integration.live_server import LiveServer

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            issuer=ISSUER, database_url=f"sqlite:///{Path(tmp) / 'idp.sqlite3'}", data_dir=Path(tmp),
            kek=base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode(), kek_file=Path(tmp) / "kek",
            demo=False, log_level="WARNING",
        )  # fmt: skip
        engine = make_engine(settings.sqlalchemy_url)
        upgrade(engine)
        engine.dispose()
        c = build_services(settings)
        c.keyring.tick()  # the signing keys, as at start-up
        reader, secret = c.clients.create(name="rs", kind="service", scope="deny-list:read", audience="https://api")
        for start in range(0, n, BATCH):
            items = [("jti", f"bench-{i}", time.time() + 3000) for i in range(start, min(n, start + BATCH))]
            c.denylist.deny_many(items, reason="bench", actor="bench")
        version = c.denylist.version
        server = LiveServer(create_app(services=c), before_stop=lambda: c.denylist_feed.close())
        await asyncio.to_thread(server.start)
        try:
            auth = httpx.BasicAuth(reader.client_id, secret or "")
            runs = [await _replay(server.url, auth, version) for _ in range(replays)]
        finally:
            await asyncio.to_thread(server.stop)
            c.close()
    return {
        "entries": n,
        "received": [r[3] for r in runs],
        "wall_s": [round(r[0], 3) for r in runs],
        "cpu_s": [round(r[1], 3) for r in runs],
        "bytes": [r[2] for r in runs],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m bench.denylist_replay", description=__doc__.split("\n\n")[0])
    p.add_argument("--entries", type=int, default=10_000)
    p.add_argument("--replays", type=int, default=3)
    args = p.parse_args(argv)
    result = asyncio.run(measure(args.entries, args.replays))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
