"""What the BFF adds per proxied API call: latency (p50/p99, direct vs through the BFF) and BFF CPU per request.

    python -m bench.bff_proxy [--seconds 4] [--json]

Three processes on loopback: a small upstream API (Starlette under uvicorn: it checks the bearer token is the
one the session holds, by string equality, no JWT verification, and answers about 100 bytes of JSON); the BFF as
it is deployed (``idp bff serve``, one uvicorn process, SQLite session store, proxying ``/api``); and this
process, the client, sending one request at a time (httpx, keep-alive) alternately in blocks to the upstream
directly and through the BFF with the CSRF header and the session cookie. The session is written to the
BFF's store before the BFF starts, as a sign-in leaves it (sealed tokens, an access token valid for the whole
run, so no refresh and no idp call happen during the measurement).

``bff_cpu_us_per_request`` is utime + stime of the BFF process from /proc (:mod:`bench.procstat`) over the
proxied requests divided by their count. Bounded: ``seconds`` per path (at most ``max_requests`` each), the
processes are stopped at the end whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench import procstat
from bench.server import ROOT, Server, free_port

TOKEN = "bench-access-token-" + "x" * 600  # about the size of a code-flow at+jwt
COOKIE = "bff-bench"
BLOCK = 50  # requests per block; blocks alternate between the two paths


def upstream_app() -> Any:
    """The API behind the BFF (``uvicorn --factory bench.bff_proxy:upstream_app``)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    expected = f"Bearer {TOKEN}"

    async def order(request: Request) -> Response:
        if request.headers.get("authorization") != expected:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse({"id": request.path_params["n"], "status": "shipped", "items": [1, 2, 3]})

    async def healthz(request: Request) -> Response:
        return Response("ok")

    return Starlette(routes=[Route("/v1/orders/{n}", order), Route("/healthz", healthz)])


def _start(name: str, cmd: list[str], env: dict[str, str], port: int, workdir: Path) -> Server:
    srv = Server(name, "bff", "embedded", 1, port, workdir)
    log = (workdir / "server.log").open("wb")
    srv.proc = subprocess.Popen(
        cmd, cwd=ROOT, env=os.environ | env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not srv.alive():
            raise RuntimeError(f"{name} exited during start:\n{srv.log_tail()}")
        try:
            httpx.get(f"{srv.base_url}/healthz", timeout=1)  # any answer: it listens
            return srv
        except httpx.HTTPError:
            time.sleep(0.1)
    srv.stop()
    raise RuntimeError(f"{name} not ready:\n{srv.log_tail()}")


def _seed_session(settings: Any, session_id: str) -> None:
    from idp.bff.sealing import SessionCrypto
    from idp.bff.session import BffSession, TokenSet
    from idp.bff.stores import open_store
    from idp.clock import SystemClock

    crypto = SessionCrypto(settings.key())
    clock = SystemClock()
    now = clock.now()
    store = open_store(settings.store_url, crypto, clock)
    tokens = TokenSet(TOKEN, now + 3600, "bench-refresh-token", "bench-id-token", "openid offline_access")
    session = BffSession(key=crypto.store_key(session_id), sub="bench-user", sid="bench-sid",
                         claims={"sub": "bench-user", "name": "Bench"}, tokens=tokens, created_at=now,
                         expires_at=now + 3600, extra={"seen": now})  # fmt: skip

    async def write() -> None:
        await store.create(session)
        await store.close()

    asyncio.run(write())


@contextlib.contextmanager
def _servers(workdir: Path) -> Iterator[tuple[Server, Server, str]]:
    from idp.bff.config import load_bff_settings

    up_port, bff_port = free_port(), free_port()
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    env = {
        "IDP_BFF_ISSUER": f"http://127.0.0.1:{free_port()}",  # never called: the token stays fresh
        "IDP_BFF_CLIENT_ID": "bench-bff",
        "IDP_BFF_CLIENT_SECRET": "bench-secret",
        "IDP_BFF_ORIGIN": f"http://127.0.0.1:{bff_port}",
        "IDP_BFF_ENCRYPTION_KEY": key,
        "IDP_BFF_STORE_URL": f"sqlite:///{workdir / 'bff.sqlite3'}",
        "IDP_BFF_COOKIE_NAME": COOKIE,
        "IDP_BFF_DEV": "true",
        "IDP_BFF_IDLE_TIMEOUT": "3600",
    }
    settings = load_bff_settings(**{k.removeprefix("IDP_BFF_").lower(): v for k, v in env.items()})
    session_id = secrets.token_urlsafe(32)
    _seed_session(settings, session_id)
    servers: list[Server] = []
    try:
        uvicorn = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--log-level", "warning"]
        up_cmd = [*uvicorn, "--port", str(up_port), "--factory", "bench.bff_proxy:upstream_app"]
        servers.append(_start("upstream", up_cmd, {}, up_port, workdir / "up"))
        idp_bin = str(Path(sys.executable).parent / "idp")
        bff_cmd = [idp_bin, "bff", "serve", "--host", "127.0.0.1", "--port", str(bff_port),
                   "--upstream", f"/api=http://127.0.0.1:{up_port}/v1"]  # fmt: skip
        servers.append(_start("bff", bff_cmd, env, bff_port, workdir / "bff"))
        yield servers[0], servers[1], session_id
    finally:
        for s in reversed(servers):
            s.stop()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


async def _measure(upstream: Server, bff: Server, session_id: str, seconds: float, max_requests: int) -> dict[str, Any]:
    bff_headers = {"X-CSRF": "1", "Origin": bff.base_url, "Cookie": f"{COOKIE}={session_id}"}
    direct_headers = {"Authorization": f"Bearer {TOKEN}"}
    lat: dict[str, list[float]] = {"direct": [], "bff": []}
    cpu = 0.0
    errors = 0
    pid = [bff.pid]
    async with httpx.AsyncClient(timeout=10) as c:

        async def block(path: str, n: int) -> float:
            nonlocal errors
            url, headers = (
                (f"{upstream.base_url}/v1/orders/{n}", direct_headers)
                if path == "direct"
                else (f"{bff.base_url}/api/orders/{n}", bff_headers)
            )
            cpu0 = procstat.cpu_seconds(pid)
            for _ in range(BLOCK):
                t = time.perf_counter()
                r = await c.get(url, headers=headers)
                lat[path].append((time.perf_counter() - t) * 1000)
                if r.status_code != 200 or not r.content.startswith(b'{"id":'):
                    errors += 1
            return procstat.cpu_seconds(pid) - cpu0

        for path in ("direct", "bff"):  # warm-up: connections, imports, the store's first read
            await block(path, 0)
        lat = {"direct": [], "bff": []}
        errors = 0
        deadline = time.monotonic() + 2 * seconds
        i = 0
        while time.monotonic() < deadline and len(lat["bff"]) < max_requests:
            await block("direct", i)
            cpu += await block("bff", i)
            i += 1
    n = len(lat["bff"])
    p50d, p50b = statistics.median(lat["direct"]), statistics.median(lat["bff"])
    return {
        "upstream": "trivial (bearer compared as a string)",
        "store": "sqlite",
        "requests_each": n,
        "errors": errors,
        "direct_p50_ms": round(p50d, 3),
        "direct_p99_ms": _pct(lat["direct"], 0.99),
        "bff_p50_ms": round(p50b, 3),
        "bff_p99_ms": _pct(lat["bff"], 0.99),
        "added_p50_ms": round(p50b - p50d, 3),
        "bff_cpu_us_per_request": round(cpu / n * 1e6, 1) if n else None,
    }


def run(seconds: float = 4.0, max_requests: int = 20_000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bff-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "up").mkdir()
        (workdir / "bff").mkdir()
        with _servers(workdir) as (upstream, bff, session_id):
            return asyncio.run(_measure(upstream, bff, session_id, seconds, max_requests))


def report(r: dict[str, Any]) -> str:
    return (
        f"GET of ~100 B JSON, one at a time, {r['requests_each']} each ({r['errors']} errors):"
        f" direct p50 {r['direct_p50_ms']} ms p99 {r['direct_p99_ms']} ms;"
        f" through the BFF p50 {r['bff_p50_ms']} ms p99 {r['bff_p99_ms']} ms"
        f" (+{r['added_p50_ms']} ms); BFF CPU {r['bff_cpu_us_per_request']} µs/request"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m bench.bff_proxy", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=4.0, help="time per path (direct, through the BFF)")
    p.add_argument("--max-requests", type=int, default=20_000)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    result = run(args.seconds, args.max_requests)
    print(json.dumps(result, indent=2) if args.json else report(result))
    return result


if __name__ == "__main__":
    main()
