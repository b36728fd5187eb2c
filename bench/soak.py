"""Sustained mixed load: ``python -m bench.soak`` (60 s, 2 workers, PostgreSQL + Redis, loopback only).

Workload, from 16 concurrent clients, each op picked at random with these weights:
client credentials 30, code flow (``/authorize`` with a session + code exchange) 15,
refresh (each client rotates its own family) 20, introspection of a recent access
token 20, JWKS 15. Every answer other than the expected status is an error (the run
fails on any). Reported: count, rate and p50/p99 per op, and the RSS of each worker
sampled every 2 s; after a warm-up (``--warmup``, default 15 s) RSS may grow at most 10 %.

``--faults`` also runs the fault tests (tests/robustness: Redis crash, PostgreSQL
connections killed, SIGTERM) and records their outcome. Results go to
``bench/results-soak.md`` (a section for bench/RESULTS.md) and ``bench/.work/soak.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from bench import flows
from bench.server import ROOT, WORK, IdpServer, start_idp

OPS = {"client_credentials": 30, "code_flow": 15, "refresh": 20, "introspect": 20, "jwks": 15}
# The mixed row of ``make bench`` (``mixed``): only the flows that write, plus client credentials, together.
STATEFUL = {"client_credentials": 25, "code_flow": 25, "refresh": 35, "revoke": 15}
CLIENTS = 16
RSS_LIMIT = 0.10
OUT_MD = Path(__file__).resolve().parent / "results-soak.md"


class Soak:
    def __init__(self, server: IdpServer, seconds: float, seed: int, ops: dict[str, int] | None = None) -> None:
        self.server = server
        self.ops = ops or OPS
        self.seconds = seconds
        self.rng = random.Random(seed)
        self.paths = flows.endpoints(server)
        self.svc = server.info["service"]
        self.web = server.info["web"]
        self.lat: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)
        self.recent_at: list[str] = []
        self.session = ""

    async def post(self, http: httpx.AsyncClient, path: str, body: str, client: dict[str, str]) -> httpx.Response:
        headers = {"content-type": flows.FORM_CT, "authorization": flows.basic(client)}
        return await http.post(self.paths[path], content=body, headers=headers)

    def ok(self, op: str, t0: float, r: httpx.Response, expected: int) -> bool:
        self.lat[op].append(time.perf_counter() - t0)
        if r.status_code != expected:
            self.errors[op].append(f"{r.status_code} {r.text[:120]}")
            return False
        return True

    async def client_credentials(self, http: httpx.AsyncClient, state: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        r = await self.post(http, "token", flows.cc_body(), self.svc)
        if self.ok("client_credentials", t0, r, 200):
            self.recent_at = [r.json()["access_token"], *self.recent_at][:64]

    async def code_flow(self, http: httpx.AsyncClient, state: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        r = await http.get(flows.authorize_path(self.server, self.paths), headers={"cookie": self.session})
        if not self.ok("authorize", t0, r, 302):
            return
        code = parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
        t0 = time.perf_counter()
        r = await self.post(http, "token", flows.exchange_body(self.server, code), self.web)
        if self.ok("code_exchange", t0, r, 200) and "refresh_token" in r.json():
            state["refresh_token"] = r.json()["refresh_token"]

    async def refresh(self, http: httpx.AsyncClient, state: dict[str, Any]) -> None:
        if "refresh_token" not in state:
            await self.code_flow(http, state)
            return
        body = f"grant_type=refresh_token&refresh_token={state['refresh_token']}"
        t0 = time.perf_counter()
        r = await self.post(http, "token", body, self.web)
        if self.ok("refresh", t0, r, 200):
            state["refresh_token"] = r.json()["refresh_token"]
        else:
            state.pop("refresh_token", None)

    async def revoke(self, http: httpx.AsyncClient, state: dict[str, Any]) -> None:
        """RFC 7009: revoke this client's refresh token (its family); the next refresh starts a new one."""
        if "refresh_token" not in state:
            await self.code_flow(http, state)
            return
        t0 = time.perf_counter()
        r = await self.post(http, "revocation", f"token={state.pop('refresh_token')}", self.web)
        self.ok("revoke", t0, r, 200)

    async def introspect(self, http: httpx.AsyncClient, state: dict[str, Any]) -> None:
        if not self.recent_at:
            await self.client_credentials(http, state)
            return
        token = self.rng.choice(self.recent_at)
        t0 = time.perf_counter()
        r = await self.post(http, "introspection", f"token={token}", self.svc)
        if self.ok("introspect", t0, r, 200) and r.json().get("active") is not True:
            self.errors["introspect"].append("a live token reported inactive")

    async def jwks(self, http: httpx.AsyncClient, state: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        self.ok("jwks", t0, await http.get(self.paths["jwks"]), 200)

    async def client(self, http: httpx.AsyncClient, deadline: float) -> None:
        state: dict[str, Any] = {}
        names, weights = list(self.ops), list(self.ops.values())
        while time.monotonic() < deadline:
            op = self.rng.choices(names, weights)[0]
            try:
                await getattr(self, op)(http, state)
            except httpx.HTTPError as exc:
                self.errors[op].append(type(exc).__name__)

    async def run(self) -> dict[str, Any]:
        self.session = await asyncio.to_thread(flows.idp_login, self.server)
        rss: list[tuple[float, list[float]]] = []
        start = time.monotonic()
        deadline = start + self.seconds

        async def sample() -> None:
            while time.monotonic() < deadline:
                rss.append((round(time.monotonic() - start, 1), self.server.rss()))
                await asyncio.sleep(2)

        limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
        async with httpx.AsyncClient(base_url=self.server.base_url, timeout=30, limits=limits) as http:
            await asyncio.gather(sample(), *[self.client(http, deadline) for _ in range(CLIENTS)])
        return {"elapsed_s": round(time.monotonic() - start, 1), "rss": rss}


def mixed(quick: bool = False, seconds: float | None = None, workers: int = 2, seed: int = 1) -> dict[str, Any]:
    """The sustained mixed-load row: refresh, code exchange, revocation and client credentials together against
    PostgreSQL + Redis (``workers`` workers, 16 clients) for ``seconds`` (60; 5 with ``quick``). Flat keys: the
    error count (must be 0), each op's rate and p99, and the p99 over every request."""
    seconds = seconds if seconds is not None else (5.0 if quick else 60.0)
    server = start_idp("mixed", backend="postgres", workers=workers, run_dir=WORK / "mixed")
    try:
        soak = Soak(server, seconds, seed, STATEFUL)
        raw = asyncio.run(soak.run())
    finally:
        server.stop()
    every = [x for v in soak.lat.values() for x in v]
    out: dict[str, Any] = {
        "seconds": seconds, "workers": workers, "requests": len(every),
        "errors": sum(len(e) for e in soak.errors.values()), "p99_ms_all": round(pct(every, 99), 1),
    }  # fmt: skip
    for op, v in sorted(soak.lat.items()):
        out[f"{op}_rps"] = round(len(v) / raw["elapsed_s"], 1)
        out[f"{op}_p99_ms"] = round(pct(v, 99), 1)
    if soak.errors:
        out["error_samples"] = "; ".join(f"{k}: {v[0]}" for k, v in soak.errors.items())
    return out


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] * 1000 if s else 0.0


def rss_growth(rss: list[tuple[float, list[float]]], warmup: float) -> list[float]:
    after = [r for t, r in rss if t >= warmup and r]
    if len(after) < 2:
        return []
    first, last = after[0], after[-1]
    return [round((b - a) / a, 4) for a, b in zip(first, last, strict=False)]


def run_faults() -> list[dict[str, str]]:
    files = ["test_faults_redis.py", "test_faults_postgres.py", "test_sigterm.py"]
    cmd = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-rA",
           *[f"tests/robustness/{f}" for f in files]]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    out = []
    for line in done.stdout.splitlines():
        m = re.match(r"^(PASSED|FAILED|ERROR|SKIPPED) (\S+)", line)
        if m:
            out.append({"outcome": m.group(1), "test": m.group(2).split("::", 1)[-1]})
        elif line.startswith("pg fault:"):
            out.append({"outcome": "INFO", "test": line})
    return out


def markdown(result: dict[str, Any], faults: list[dict[str, str]] | None) -> str:
    lines = ["## Sustained load and faults (bench/soak.py)", "",
             f"{result['seconds']:.0f} s mixed workload, {result['workers']} workers, PostgreSQL + Redis, "
             f"{CLIENTS} concurrent clients on loopback ({result['date']}). "
             f"Errors: **{result['errors_total']}**. RSS growth per worker after a {result['warmup']:.0f} s warm-up: "
             f"{', '.join(f'{g:+.1%}' for g in result['rss_growth']) or 'n/a'} (limit +10 %).", "",
             "| op | requests | req/s | p50 ms | p99 ms | errors |", "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for op, row in result["ops"].items():
        cells = [op, row["n"], f"{row['rps']:.0f}", f"{row['p50_ms']:.1f}", f"{row['p99_ms']:.1f}", row["errors"]]
        lines.append("| " + " | ".join(str(x) for x in cells) + " |")
    lines += ["", f"RSS per worker (MiB), first and last sample: {result['rss_first']} -> {result['rss_last']}.",
              "Rates are those of one Python (httpx) load process sharing the 2 cores with the server: this run is "
              "about errors, latency tails and memory over time; the throughput rows of this file measure speed.",
              ""]  # fmt: skip
    if faults is not None:
        lines += ["Fault runs (tests/robustness, real services on their own ports):", ""]
        lines += [f"- {f['outcome']}: `{f['test']}`" for f in faults] or ["- (no fault test ran)"]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=15.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--faults", action="store_true", help="also run the fault tests and record them")
    ap.add_argument("--mixed", action="store_true", help="only the mixed row (writes + client credentials)")
    args = ap.parse_args(argv)
    if args.mixed:
        result = mixed(seconds=args.seconds, workers=args.workers, seed=args.seed)
        print(json.dumps(result, indent=1))
        return 1 if result["errors"] else 0
    run_dir = WORK / "soak"
    server = start_idp("soak", backend="postgres", workers=args.workers, run_dir=run_dir)
    try:
        soak = Soak(server, args.seconds, args.seed)
        raw = asyncio.run(soak.run())
    finally:
        server.stop()
    rss = raw["rss"]
    ops = {
        op: {"n": len(v), "rps": len(v) / raw["elapsed_s"], "p50_ms": pct(v, 50), "p99_ms": pct(v, 99),
             "errors": len(soak.errors.get(op, []))}
        for op, v in sorted(soak.lat.items())
    }  # fmt: skip
    growth = rss_growth(rss, args.warmup)
    result = {
        "date": time.strftime("%Y-%m-%d"), "seconds": args.seconds, "warmup": args.warmup, "workers": args.workers,
        "ops": ops, "errors_total": sum(len(e) for e in soak.errors.values()),
        "error_samples": {k: v[:5] for k, v in soak.errors.items()}, "rss_growth": growth,
        "rss_first": rss[0][1] if rss else [], "rss_last": rss[-1][1] if rss else [],
    }  # fmt: skip
    faults = run_faults() if args.faults else None
    WORK.mkdir(exist_ok=True)
    (WORK / "soak.json").write_text(json.dumps(result | {"faults": faults, "rss_samples": rss}, indent=1))
    OUT_MD.write_text(markdown(result, faults))
    print(markdown(result, faults))
    failed = result["errors_total"] > 0 or any(g > RSS_LIMIT for g in growth) or not growth
    failed = failed or any(f["outcome"] in ("FAILED", "ERROR") for f in faults or [])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
