"""``python -m bench.run`` (``make bench``): start every mode, run every row in interleaved
rounds, profile the token endpoint, write bench/RESULTS.md and bench/results.json.

    python -m bench.run              # full run: 3 rounds x 3 s per row (~8-10 minutes)
    python -m bench.run --quick      # smoke run: 1 round x 1 s, fewer modes (~1 minute)
    python -m bench.run --rows client_credentials,jwks --modes idp-pg-2w,peer-2p
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import external, flows, load, meta, procstat, profile, report, roundtrips, server
from bench.rows import ROWS, Budget, Row, Target

MODES = ["idp-embedded", "idp-pg-1w", "idp-pg-2w", "peer-1p", "peer-2p"]
QUICK_MODES = ["idp-embedded", "idp-pg-2w", "peer-2p"]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="~1 minute smoke run (1 round, 1 s, 3 modes)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (median reported); default 3, quick 1")
    p.add_argument("--duration", type=int, help="seconds per time-bounded measurement; default 3, quick 1")
    p.add_argument("--modes", help=f"comma-separated subset of {','.join(MODES)}")
    p.add_argument("--rows", help="comma-separated row keys, external ones included (default: all)")
    p.add_argument("--no-peer", action="store_true", help="skip node-oidc-provider")
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--no-roundtrips", action="store_true", help="skip counting SQL/Redis round trips per request")
    p.add_argument("--profile-seconds", type=int, help="py-spy duration; default 10, quick 3")
    p.add_argument("--profile", default="client_credentials", help="rows to profile (comma-separated)")
    p.add_argument("--out", type=Path, default=server.BENCH, help="where RESULTS.md and results.json go")
    p.add_argument(
        "--idp-env",
        action="append",
        default=[],
        metavar="IDP_NAME=VALUE",
        help="setting for the idp servers, repeatable (A/B runs, e.g. IDP_LOG_LEVEL=WARNING)",
    )
    return p.parse_args(argv)


def start(name: str, run_dir: Path, idp_env: dict[str, str]) -> server.Server:
    if name == "idp-embedded":
        return server.start_idp(name, backend="embedded", workers=1, run_dir=run_dir, extra_env=idp_env)
    if name.startswith("idp-pg-"):
        return server.start_idp(name, backend="postgres", workers=int(name[-2]), run_dir=run_dir, extra_env=idp_env)
    return server.start_peer(name, processes=int(name[-2]), run_dir=run_dir)


def measure(row: Row, t: Target, b: Budget) -> dict[str, Any]:
    """Prepare (unmeasured), then run the load with CPU accounting of the server tree and PG/Redis."""
    row.prepare(t, b)
    database = getattr(t.server, "database", None)
    backing = t.server.backend in ("postgres", "redis")
    svc0 = procstat.cpu_by_pid(procstat.backing_pids(database)) if backing else {}
    cpu0 = t.server.cpu()
    result = row.measure(t, b)
    cpu1 = t.server.cpu()
    served = max(result["requests"], 1)
    result["cpu_us"] = round((cpu1 - cpu0) / served * 1e6, 1)
    if backing:
        svc1 = procstat.cpu_by_pid(procstat.backing_pids(database))
        result["backing_cpu_us"] = round(procstat.cpu_delta(svc0, svc1) / served * 1e6, 1)
    result["rss_mib"] = t.server.rss()
    t.state.setdefault("rates", {})[row.key] = result["rps"]
    return result


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the run like Ctrl-C: every started server is stopped in the finally blocks."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    budget = Budget(duration=args.duration or (1 if args.quick else 3), quick=args.quick)
    modes = args.modes.split(",") if args.modes else (QUICK_MODES if args.quick else MODES)
    rows = [r for r in ROWS if not args.rows or r.key in args.rows.split(",")]
    idp_env = dict(item.split("=", 1) for item in args.idp_env)
    started = time.time()
    results: dict[str, Any] = {
        "meta": {
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "argv": sys.argv[1:] if argv is None else argv,
            "rounds": rounds,
            "duration_s": budget.duration,
            "connections": budget.connections,
            "wrk_threads": budget.threads,
            "idp_env": idp_env,
            "machine": meta.machine(),
        },
        "modes": {},
        "rows": {
            r.key: {"title": r.title, "peer_missing": r.peer_missing, "loader": r.loader, "targets": {}} for r in rows
        },
        "skipped_modes": {},
    }
    load.ensure_wrk(log)
    if args.no_peer or not server.ensure_peer(log):
        for m in [m for m in modes if m.startswith("peer")]:
            results["skipped_modes"][m] = "peer disabled or node/npm unavailable"
        modes = [m for m in modes if not m.startswith("peer")]
    results["meta"]["versions"] = meta.versions()
    run_dir = server.WORK / time.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    targets: list[Target] = []
    with terminate_as_interrupt():
        try:
            for name in modes:
                log(f"starting {name}")
                try:
                    srv = start(name, run_dir, idp_env)
                except Exception as exc:
                    results["skipped_modes"][name] = f"did not start: {str(exc).splitlines()[0]}"
                    log(results["skipped_modes"][name])
                    continue
                targets.append(Target(srv, flows.endpoints(srv)))
                results["modes"][name] = {
                    "kind": srv.kind, "backend": srv.backend, "workers": srv.workers, "issuer": srv.base_url,
                    "argon2": srv.info.get("argon2"),
                }  # fmt: skip
            available = check_rows(rows, targets, results)
            warm_up(targets, available, budget)
            for t in targets:
                results["modes"][t.name]["rss_mib_after_warmup"] = t.server.rss()
            for rnd in range(rounds):
                order = targets[rnd % len(targets) :] + targets[: rnd % len(targets)] if targets else []
                for row in rows:
                    for t in order:
                        if not available[(row.key, t.name)]:
                            continue
                        log(f"round {rnd + 1}/{rounds} {row.key:<18} {t.name}")
                        entry = results["rows"][row.key]["targets"][t.name]
                        try:
                            entry["runs"].append(measure(row, t, budget))
                        except Exception as exc:
                            entry.setdefault("failures", []).append(f"round {rnd + 1}: {exc}")
                            log(f"  failed: {exc}")
                            traceback.print_exc(limit=3)
            only = set(args.rows.split(",")) if args.rows else None
            results["external"] = external.run_all(targets, budget, rounds, log, only)
            if not args.no_roundtrips and any(t.server.backend == "postgres" for t in targets):
                log("counting round trips per request (in-process, PostgreSQL + Redis)")
                try:
                    results["roundtrips"] = roundtrips.run("postgres", 10 if args.quick else 20)
                except Exception as exc:
                    results["roundtrips"] = {"error": str(exc)}
            for t in targets:
                results["modes"][t.name]["rss_mib_final"] = t.server.rss()
                results["modes"][t.name]["token_sizes"] = t.state.get("sizes", {})
            if not args.no_profile:
                results["profile"] = run_profile(targets, available, budget, args, run_dir)
        except KeyboardInterrupt:
            log("interrupted: stopping servers")
            results["meta"]["interrupted"] = True
        finally:
            for t in targets:
                with contextlib.suppress(Exception):
                    t.server.stop()
    results["meta"]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    results["meta"]["elapsed_s"] = round(time.time() - started, 1)
    results["meta"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    cleanup_work(run_dir, keep=3)
    report.aggregate(results)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, sort_keys=False) + "\n")
    (out / "RESULTS.md").write_text(report.markdown(results))
    log(f"wrote {out / 'RESULTS.md'} and {out / 'results.json'} in {results['meta']['elapsed_s']:.0f}s")
    return 130 if results["meta"].get("interrupted") else 0


def cleanup_work(run_dir: Path, keep: int) -> None:
    """Keep the last ``keep`` run folders under bench/.work (logs, profiles), and no SQLite files in this one.

    Only timestamped run folders are touched (other tools keep their own folders there)."""
    for db in run_dir.rglob("*.sqlite3*"):
        db.unlink(missing_ok=True)
    runs = sorted(p for p in server.WORK.iterdir() if p.is_dir() and p.name[:8].isdigit() and p != run_dir)
    for old in runs[: max(len(runs) - (keep - 1), 0)]:
        shutil.rmtree(old, ignore_errors=True)


def check_rows(rows: list[Row], targets: list[Target], results: dict[str, Any]) -> dict[tuple[str, str], bool]:
    available = {}
    for row in rows:
        for t in targets:
            try:
                reason = row.check(t)
            except Exception as exc:
                reason = f"check failed: {exc}"
            entry = {"runs": []} if reason is None else {"unavailable": reason}
            results["rows"][row.key]["targets"][t.name] = entry
            available[(row.key, t.name)] = reason is None
            if reason:
                log(f"{row.key} on {t.name}: {reason}")
    return available


def warm_up(targets: list[Target], available: dict[tuple[str, str], bool], budget: Budget) -> None:
    """One unrecorded second of discovery and client_credentials per target (imports, pools, JIT)."""
    by_key = {r.key: r for r in ROWS}
    for t in targets:
        for key in ("discovery", "client_credentials"):
            if available.get((key, t.name)):
                with contextlib.suppress(Exception):
                    by_key[key].measure(t, Budget(duration=1, quick=True))


def run_profile(
    targets: list[Target], available: dict[tuple[str, str], bool], budget: Budget, args: Any, run_dir: Path
) -> dict[str, Any]:
    """py-spy on one worker of idp-pg-2w (else the last idp mode) while a row's load runs."""
    seconds = args.profile_seconds or (3 if args.quick else 10)
    out: dict[str, Any] = {}
    for key in args.profile.split(","):
        row = next((r for r in ROWS if r.key == key), None)
        idps = [t for t in targets if t.is_idp and available.get((key, t.name))]
        if row is None or not idps:
            out[key] = {"error": f"row {key!r} is not available on any idp mode"}
            continue
        t = next((x for x in idps if x.name == "idp-pg-2w"), idps[-1])
        load_budget = Budget(seconds + 1, budget.quick)
        try:
            row.prepare(t, load_budget)
        except Exception as exc:
            out[key] = {"error": f"prepare failed: {exc}"}
            continue
        pid = t.server.worker_pids()[0]
        log(f"profiling {key} on {t.name} (worker {pid}) for {seconds}s")
        raw = run_dir / f"profile-{key}.raw"
        summary = profile.record(pid, seconds, raw, functools.partial(row.measure, t, load_budget))
        out[key] = summary | {"target": t.name, "row": key, "title": row.title}
    return out


if __name__ == "__main__":
    sys.exit(main())
