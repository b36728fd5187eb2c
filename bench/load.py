"""Load generators: ``wrk`` (static requests and pool-fed stateful requests) and a small
asyncio/httpx generator for flows that need Python (hosted login, the CI smoke test).

Every run returns the same dict shape: requests, ok, errors, elapsed_s, rps,
p50_ms, p99_ms (plus statuses of failed responses).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

LUA = Path(__file__).resolve().parent / "lua"
CONNECTIONS = 16
THREADS = 2
DONE_GRACE = 1.5  # seconds a pool run may wait for a straggling answer once a thread ran dry


class LoadError(Exception):
    pass


def ensure_wrk(log: Callable[[str], None] = print) -> str:
    """wrk from Debian; installed with apt-get when missing (the bench runs as root in CI)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise LoadError("wrk is not installed (apt-get install wrk)")
    log("installing wrk with apt-get ...")
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True, timeout=300)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env, capture_output=True, timeout=300)
    found = shutil.which("wrk")
    if not found:
        raise LoadError("wrk installation failed")
    return found


def wrk_version() -> str:
    wrk = shutil.which("wrk")
    if not wrk:
        return "missing"
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True)
    return (done.stdout + done.stderr).split("\n", 1)[0].strip()


def run_wrk(
    base_url: str,
    script: str,
    args: dict[str, Any] | list[tuple[str, str]],
    *,
    duration: float,
    connections: int = CONNECTIONS,
    threads: int = THREADS,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Run wrk with bench/lua/<script>; ``args`` become key=value script arguments."""
    items = list(args.items()) if isinstance(args, dict) else list(args)
    done_file = None
    if script == "pool.lua":
        fd, done_file = tempfile.mkstemp(prefix="bench-wrk-done-")
        os.close(fd)
        items += [("nthreads", str(threads)), ("done", done_file)]
    cmd = [
        shutil.which("wrk") or "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={timeout:g}s",
        "--latency",
        "-s",
        str(LUA / script),
        base_url,
        "--",
        *[f"{k}={v}" for k, v in items],
    ]
    env = os.environ | {"BENCH_LUA_DIR": str(LUA)}
    try:
        stdout, stderr, code = _wait_wrk(cmd, env, duration + 60, Path(done_file) if done_file else None)
    finally:
        if done_file:
            Path(done_file).unlink(missing_ok=True)
    line = next((ln for ln in stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise LoadError(f"wrk failed ({code}): {stderr.strip()[-500:] or stdout[-500:]}")
    raw = json.loads(line.removeprefix("BENCHJSON "))
    return _summarise_wrk(raw)


def _wait_wrk(cmd: list[str], env: dict[str, str], timeout: float, done_file: Path | None) -> tuple[str, str, int]:
    """Run wrk. pool.lua threads check in to ``done_file`` when their pool runs out and the last
    one ends the run; if an answer never comes back, end it ourselves (SIGINT: wrk still reports)
    DONE_GRACE seconds after the first thread checked in."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, text=True)
        deadline = time.monotonic() + timeout
        first_done: float | None = None
        try:
            while proc.poll() is None:
                now = time.monotonic()
                if now > deadline:
                    proc.kill()
                    break
                if done_file is not None and first_done is None and done_file.stat().st_size > 0:
                    first_done = now
                if first_done is not None and now - first_done > DONE_GRACE:
                    proc.send_signal(signal.SIGINT)
                    first_done = float("inf")  # once
                time.sleep(0.05)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        err.seek(0)
        return out.read(), err.read(), proc.returncode


def _summarise_wrk(raw: dict[str, Any]) -> dict[str, Any]:
    socket_errors = sum(raw[f"errors_{k}"] for k in ("connect", "read", "write", "timeout"))
    threads = raw.get("threads") or []
    if threads:  # pool.lua: its own counters and clock (threads may stop before -d ends)
        ok = sum(t["ok"] for t in threads)
        bad = sum(t["bad"] for t in threads)
        firsts = [t["first"] for t in threads if t["first"] is not None]
        lasts = [t["last"] for t in threads if t["last"] is not None]
        elapsed = (max(lasts) - min(firsts)) if firsts and lasts else raw["duration_s"]
        statuses: Counter[str] = Counter()
        for t in threads:
            for part in filter(None, t["statuses"].split(",")):
                code, n = part.split(":")
                statuses[code] += int(n)
        requests = ok + bad
        exhausted = all(t["exhausted"] for t in threads)
    else:
        requests = raw["requests"]
        bad = raw["errors_status"]
        ok = requests - bad
        elapsed = raw["duration_s"]
        statuses = Counter()
        exhausted = False
    return {
        "requests": requests,
        "ok": ok,
        "errors": bad + socket_errors,
        "socket_errors": socket_errors,
        "statuses": dict(statuses),
        "elapsed_s": round(elapsed, 3),
        "rps": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": round(raw["p50_ms"], 3),
        "p99_ms": round(raw["p99_ms"], 3),
        "pool_exhausted": exhausted,
    }


def read_pool(prefix: Path, threads: int = THREADS) -> list[str]:
    """Values captured by pool.lua into PREFIX.<thread>."""
    out: list[str] = []
    for i in range(threads):
        path = Path(f"{prefix}.{i}")
        if path.exists():
            out.extend(line for line in path.read_text().splitlines() if line)
            path.unlink()
    return out


# -- Python generator --------------------------------------------------------------------------------
Flow = Callable[[httpx.AsyncClient, int], Awaitable[bool]]


async def run_python(
    base_url: str,
    flow: Flow,
    *,
    total: int,
    concurrency: int = CONNECTIONS,
    max_seconds: float = 30.0,
    probe: Callable[[httpx.AsyncClient], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Run ``flow(client, i)`` ``total`` times with ``concurrency`` workers; stop early at ``max_seconds``.

    ``flow`` returns True on success. Latency is per flow call. ``probe``, when given, runs
    beside the load (e.g. a discovery fetch every 20 ms) and its latencies are reported too.
    """
    latencies: list[float] = []
    probe_latencies: list[float] = []
    statuses: Counter[str] = Counter()
    counter = iter(range(total))
    ok = 0
    start = time.perf_counter()
    deadline = start + max_seconds
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)

    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0) as client:

        async def worker() -> None:
            nonlocal ok
            for i in counter:
                if time.perf_counter() > deadline:
                    break
                t0 = time.perf_counter()
                try:
                    good = await flow(client, i)
                except httpx.HTTPError as exc:
                    good = False
                    statuses[type(exc).__name__] += 1
                latencies.append(time.perf_counter() - t0)
                if good:
                    ok += 1
                else:
                    statuses["failed"] += 1

        async def prober() -> None:
            assert probe is not None
            async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as pc:
                while not stop.is_set():
                    t0 = time.perf_counter()
                    await probe(pc)
                    probe_latencies.append(time.perf_counter() - t0)
                    await asyncio.sleep(0.02)

        probe_task = asyncio.create_task(prober()) if probe else None
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        stop.set()
        if probe_task:
            await probe_task

    result = {
        "requests": len(latencies),
        "ok": ok,
        "errors": len(latencies) - ok,
        "socket_errors": 0,
        "statuses": dict(statuses),
        "elapsed_s": round(elapsed, 3),
        "rps": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": round(percentile(latencies, 50) * 1000, 3),
        "p99_ms": round(percentile(latencies, 99) * 1000, 3),
        "pool_exhausted": False,
    }
    if probe:
        result["probe_p50_ms"] = round(percentile(probe_latencies, 50) * 1000, 3)
        result["probe_p99_ms"] = round(percentile(probe_latencies, 99) * 1000, 3)
        result["probe_max_ms"] = round(max(probe_latencies, default=0.0) * 1000, 3)
    return result


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[min(998, max(0, round(pct * 10) - 1))]
