"""RESULTS.md from the aggregated results dict (see bench/README.md for how to read it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import DASH, PAIRS, _fmt

TIMES = "\u00d7"  # multiplication sign
MET = {True: "✅ met", False: "❌ missed", None: f"{DASH} not measured"}


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return [*out, ""]


def render(results: dict[str, Any]) -> str:
    m = results["meta"]
    mach = m["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"Written by `make bench` (`python -m bench.run {' '.join(m.get('argv') or [])}`) on {m['started']};"
        f" {m['rounds']} interleaved round(s) of {m['duration_s']} s per time-bounded row, wrk with"
        f" {m['wrk_threads']} threads and {m['connections']} connections, all on 127.0.0.1;"
        f" took {m['elapsed_s']:.0f} s.",
        f"Load average at start {mach['load_average']}, at end {m.get('load_average_end')}"
        " (other work on the box inflates latency and lowers throughput; CPU µs/request is the steadier figure).",
        "",
    ]
    if m.get("idp_env"):
        lines += [f"idp settings overridden for this run: `{m['idp_env']}`.", ""]
    if m.get("interrupted"):
        lines += ["**This run was interrupted; the tables are partial.**", ""]
    lines += ["## Machine", ""]
    lines += _table(
        ["CPU", "cores", "RAM", "kernel", "OS"],
        [[mach["cpu_model"], str(mach["cores"]), f"{mach['ram_gib']} GiB", mach["kernel"], mach["os"]]],
    )
    lines += _speed(mach)
    v = m.get("versions", {})
    lines += ["## Versions", "", ", ".join(f"{k} {val}" for k, val in v.items()), ""]
    lines += _modes(results)
    lines += _targets(results)
    lines += _side_by_side(results)
    lines += _rows(results)
    lines += _login(results)
    lines += _external(results)
    lines += _bff(results)
    lines += _sizes(results)
    lines += _roundtrips(results)
    lines += _profile(results)
    lines += _soak()
    lines += _gaps()
    lines += _design()
    return "\n".join(lines).rstrip() + "\n"


def _speed(mach: dict[str, Any]) -> list[str]:
    sp = mach.get("speed")
    if not sp:
        return []
    from bench.meta import REFERENCE_US

    cells = ", ".join(f"{k.replace('_', ' ')} {sp[k + '_us']} µs (reference {r:g})" for k, r in REFERENCE_US.items())
    avx = "yes" if mach.get("avx512") else "no"
    return [
        f"Box speed, measured at the start (cryptography, one thread; AVX-512: {avx}):"
        f" {cells}. This box takes **{sp['slower_than_reference']} times** the reference box's time per operation"
        " (geometric mean), the box the absolute targets were set on: every CPU-bound row scales with it."
        " Ratios to node-oidc-provider, measured in the same run, do not.",
        "",
    ]


def _gaps() -> list[str]:
    """The hand-written explanation of each missed target (bench/gaps.md), after the measurements."""
    path = Path(__file__).with_name("gaps.md")
    return ["", path.read_text().rstrip(), ""] if path.exists() else []


def _design() -> list[str]:
    """The hand-written figures behind design choices in idp/ (bench/design.md), kept out of the code."""
    path = Path(__file__).with_name("design.md")
    return ["", path.read_text().rstrip(), ""] if path.exists() else []


def _soak() -> list[str]:
    """The sustained-load and fault section written by ``python -m bench.soak --faults``."""
    path = Path(__file__).with_name("results-soak.md")
    return ["", *path.read_text().splitlines(), ""] if path.exists() else []


def _modes(results: dict[str, Any]) -> list[str]:
    rows = []
    for name, mode in results["modes"].items():
        store = {
            "embedded": "SQLite file + in-process store",
            "postgres": "PostgreSQL + Redis",
            "memory": "in-memory adapter",
            "redis": "Redis adapter (ioredis)",
        }[mode["backend"]]
        server = "idp (uvicorn)" if mode["kind"] == "idp" else "node-oidc-provider"
        unit = "worker" if mode["kind"] == "idp" else "process"
        procs = f"{mode['workers']} {unit}{('s' if unit == 'worker' else 'es') * (mode['workers'] > 1)}"
        warm = ", ".join(f"{x:.0f}" for x in mode.get("rss_mib_after_warmup") or []) or DASH
        rss = ", ".join(f"{x:.0f}" for x in mode.get("rss_mib_final") or []) or DASH
        rows.append([f"`{name}`", server, store, procs, warm, rss])
    head = ["mode", "server", "store", "processes", "RSS MiB/worker after warm-up", "RSS MiB/worker at end"]
    out = ["## Modes", "", *_table(head, rows)]
    for name, why in results.get("skipped_modes", {}).items():
        out.append(f"- `{name}` skipped: {why}")
    return [*out, ""] if results.get("skipped_modes") else out


def _targets(results: dict[str, Any]) -> list[str]:
    rows = [[t["target"], t["required"], t["measured"], MET[t["met"]]] for t in results.get("targets", [])]
    return [
        "## Targets (PostgreSQL + Redis, 2 workers, medians)",
        "",
        *_table(["target", "required", "measured", ""], rows),
    ]


def _side_by_side(results: dict[str, Any]) -> list[str]:
    head = ["row"]
    for idp, peer in PAIRS:
        head += [f"`{idp}` /s", f"`{peer}` /s", "ratio"]
    rows = []
    notes = []
    for line in results.get("side_by_side", []):
        cells = [line["title"]]
        for idp, peer in PAIRS:
            pair = line.get(f"{idp}/{peer}")
            if pair:
                cells += [_fmt(pair["idp_rps"]), _fmt(pair["peer_rps"]), f"**{pair['ratio']:.2f}{TIMES}**"]
            else:
                cells += [DASH, DASH, DASH]
        rows.append(cells)
        if line.get("peer_missing"):
            notes.append(f"- {line['title']}: {line['peer_missing']}.")
    out = [
        "## Side by side with node-oidc-provider (throughput; ratio = idp / peer)",
        "",
        *_table(head, rows),
    ]
    cpu_rows = []
    for line in results.get("side_by_side", []):
        pair = line.get("idp-pg-2w/peer-2p")
        if pair and pair.get("idp_cpu_us") and pair.get("peer_cpu_us"):
            ratio = pair["idp_cpu_us"] / pair["peer_cpu_us"]
            cpu_rows.append([line["title"], _fmt(pair["idp_cpu_us"]), _fmt(pair["peer_cpu_us"]), f"{ratio:.2f}{TIMES}"])
    if cpu_rows:
        out += ["Server CPU per request, 2 processes each (lower is better):", ""]
        out += _table(["row", "idp µs", "peer µs", "idp / peer"], cpu_rows)
    return out + notes + ([""] if notes else [])


def _rows(results: dict[str, Any]) -> list[str]:
    out = ["## All rows (median of rounds; errors summed over rounds)", ""]
    head = ["mode", "req/s", "p50 ms", "p99 ms", "errors", "server CPU µs/req", "PG+Redis CPU µs/req", "RSS MiB/worker"]
    for key, row in results["rows"].items():
        out += [f"### {row['title']} (`{key}`)", ""]
        rows, missing = [], []
        for name, entry in row["targets"].items():
            med = entry.get("median")
            if med:
                errors = _fmt(med["errors"]) + (f" {med['statuses']}" if med.get("statuses") else "")
                rss = ", ".join(f"{x:.0f}" for x in med.get("rss_mib") or [])
                rows.append(
                    [f"`{name}`", _fmt(med.get("rps")), _fmt(med.get("p50_ms"), 2), _fmt(med.get("p99_ms"), 2),
                     errors, _fmt(med.get("cpu_us")), _fmt(med.get("backing_cpu_us")), rss]
                )  # fmt: skip
            else:
                why = entry.get("unavailable") or "; ".join(entry.get("failures", [])) or "no successful run"
                missing.append(f"- `{name}`: {why}")
        out += _table(head, rows) if rows else []
        out += missing + ([""] if missing else [])
    return out


def _login(results: dict[str, Any]) -> list[str]:
    params = next((m["argon2"] for m in results["modes"].values() if m.get("argon2")), None)
    entry = results["rows"].get("login", {}).get("targets", {})
    probes = [
        f"`{n}` discovery beside the logins: p50 {e['median'].get('probe_p50_ms', 0):.1f} ms,"
        f" p99 {e['median'].get('probe_p99_ms', 0):.1f} ms, max {e['median'].get('probe_max_ms', 0):.1f} ms"
        for n, e in entry.items()
        if e.get("median")
    ]
    if not params:
        return []
    return [
        "## Hosted login",
        "",
        f"Argon2id m = {params['memory_kib']} KiB, t = {params['time_cost']}, p = {params['parallelism']}."
        " Each measured request is the form POST (username, password, CSRF token bound to the pre-session cookie,"
        " Origin header); the GET that produced the form ran before the measurement. A probe fetched discovery"
        " every 20 ms during the logins to show whether other requests stall:",
        "",
        *[f"- {p}" for p in probes],
        "",
        *_argon2_ceiling(entry),
    ]


def _argon2_ceiling(entry: dict[str, Any]) -> list[str]:
    """The ceiling the login target is a share of: measured before each login measurement (bench.argon2_ceiling)."""
    lines = []
    for name, e in entry.items():
        med = e.get("median") or {}
        if not med.get("ceiling_per_s"):
            continue
        share = f", {med['rps'] / med['ceiling_per_s']:.0%} of it" if med.get("rps") else ""
        cpu, alone, alone_cpu = (med.get(k, 0) for k in ("hash_cpu_ms_together", "hash_ms", "hash_cpu_ms"))
        lines.append(
            f"- `{name}`: ceiling {med['ceiling_per_s']:,.1f} verifications/s ({cpu:.1f} ms CPU each);"
            f" one verification alone {alone:.1f} ms ({alone_cpu:.1f} ms CPU); logins {med.get('rps', 0):,.1f}/s{share}"
        )
    if not lines:
        return []
    return [
        "Argon2id ceiling of the box, measured in the same run just before each login measurement"
        " (`python -m bench.argon2_ceiling`: argon2-cffi at the parameters above, one process per core verifying"
        " together, nothing else of the bench running; medians of the rounds). The target is 80 % of it:",
        "",
        *lines,
        "",
    ]


def _external(results: dict[str, Any]) -> list[str]:
    ext = results.get("external") or {}
    if not ext:
        return []
    out = ["## Resource-server rows (idp only: node-oidc-provider has no resource-server library)", ""]
    for entry in ext.values():
        if entry.get("median"):
            fields = ", ".join(f"{k} {v}" for k, v in entry["median"].items())
            args = ", ".join(f"{k}={v!r}" for k, v in entry.get("arguments", {}).items())
            call = f"`{entry['module']}.{entry['function']}({args})`"
            out.append(f"- **{entry['title']}** ({call}, median of {len(entry['runs'])} run(s)): {fields}")
        else:
            why = entry.get("unavailable") or "; ".join(entry.get("failures", []))
            out.append(f"- **{entry['title']}**: not measured ({why})")
    return [*out, ""]


def _bff(results: dict[str, Any]) -> list[str]:
    """The BFF's cost per proxied call (``bench.bff_proxy``) and idp's token exchange, the BFF's other call."""
    med = (results.get("external") or {}).get("bff_proxy", {}).get("median")
    exchange = results["rows"].get("token_exchange", {}).get("targets", {})
    rates = [
        [f"`{name}`", _fmt(e["median"].get("rps")), _fmt(e["median"].get("p50_ms"), 2), _fmt(e["median"].get("cpu_us"))]
        for name, e in exchange.items()
        if e.get("median")
    ]
    if not med and not rates:
        return []
    out = ["## BFF proxy", ""]
    if med:
        out += [
            "`python -m bench.bff_proxy`: a GET of ~100 B JSON, one request at a time,"
            f" {_fmt(med.get('requests_each'))} each way ({_fmt(med.get('errors'))} errors);"
            f" upstream: {med.get('upstream')}; BFF: `idp bff serve`, one"
            f" uvicorn process, {med.get('store')} session store, a signed-in session. BFF CPU from /proc.",
            "",
            *_table(
                ["path", "p50 ms", "p99 ms", "BFF CPU µs/request"],
                [
                    ["upstream directly", _fmt(med.get("direct_p50_ms"), 2), _fmt(med.get("direct_p99_ms"), 2), DASH],
                    ["through the BFF", _fmt(med.get("bff_p50_ms"), 2), _fmt(med.get("bff_p99_ms"), 2),
                     _fmt(med.get("bff_cpu_us_per_request"))],
                    ["added by the BFF", _fmt(med.get("added_p50_ms"), 2), DASH, DASH],
                ],
            ),
        ]  # fmt: skip
    if rates:
        out += [
            "Token exchange at idp (RFC 8693, what an `exchange` upstream costs once per minted token;"
            " the `token_exchange` row):",
            "",
            *_table(["mode", "req/s", "p50 ms", "server CPU µs/req"], rates),
        ]
    return out


def _sizes(results: dict[str, Any]) -> list[str]:
    names = sorted({k for m in results["modes"].values() for k in (m.get("token_sizes") or {})})
    modes = [n for n in ("idp-pg-2w", "peer-2p", "idp-embedded", "peer-1p") if n in results["modes"]]
    if not names:
        return []
    rows = []
    for name in names:
        cells = [name.replace("_", " ")]
        for mode in modes:
            s = (results["modes"][mode].get("token_sizes") or {}).get(name)
            if not s:
                cells.append(DASH)
            elif "header" in s:
                cells.append(f"{s['bytes']} B ({s['header'].get('alg')}; {', '.join(s['claims'])})")
            else:
                cells.append(f"{s['bytes']} B (opaque)")
        rows.append(cells)
    return ["## Token sizes", "", *_table(["token", *[f"`{m}`" for m in modes]], rows)]


def _roundtrips(results: dict[str, Any]) -> list[str]:
    rt = results.get("roundtrips")
    if not rt:
        return []
    if rt.get("error"):
        return ["## Round trips per request", "", f"Not counted: {rt['error']}", ""]
    rows = []
    for name, c in rt["per_request"].items():
        tx = c["commits"] + c["rollbacks"]
        pg = c.get("pg", c["sql"] + 3 * c["checkouts"])  # older results: the pre-ping era's estimate
        rows.append([name, f"{c['sql']:g}", f"{tx:g}", f"{c['checkouts']:g}", f"{pg:g}", f"{c['redis']:g}"])
    return [
        "## Round trips per request (PostgreSQL + Redis, counted in-process)",
        "",
        f"Deterministic, unlike the throughput: {rt['requests_each']} sequential requests each, counted with"
        " SQLAlchemy engine events, a wrapper on psycopg's cursor and one on the Redis client"
        " (`python -m bench.roundtrips`)."
        " PostgreSQL round trips = statements, plus the BEGIN before a transaction's first statement and the"
        " COMMIT or ROLLBACK that ends it (single statements run in autocommit and have neither; the"
        " transactions column counts SQLAlchemy's connection scopes, autocommit ones included).",
        "",
        *_table(["request", "SQL statements", "transactions", "checkouts", "PG round trips", "Redis commands"], rows),
    ]


def _profile(results: dict[str, Any]) -> list[str]:
    profiles = results.get("profile") or {}
    out: list[str] = []
    for key, prof in profiles.items():
        out += _one_profile(key, prof)
    return out


def _io(prof: dict[str, Any]) -> str:
    io = prof.get("io_wait_samples") or {}
    parts = [f"{n} waiting on {name}" for name, n in io.items()]
    return "samples blocked on a database answer: " + (", ".join(parts) if parts else "none")


def _one_profile(key: str, prof: dict[str, Any]) -> list[str]:
    title = prof.get("title", key)
    if prof.get("error"):
        return [f"## CPU profile: {title}", "", f"Not taken: {prof['error']}", ""]
    load = prof.get("load") or {}
    return [
        f"## CPU profile: {title}",
        "",
        f"py-spy, 200 Hz, {prof['seconds']} s of worker {prof['pid']} of `{prof['target']}` while wrk drove"
        f" `{key}` ({_fmt(load.get('rps'))}/s under the profiler); {prof['samples']} busy samples"
        f" ({prof.get('waiting_samples', 0)} samples of threads parked in a wait and py-spy's idle ones left out;"
        f" {_io(prof)})."
        " Share of busy samples by package (own time; time in C code such as uvloop, httptools or OpenSSL"
        " counts for the Python frame that called it):",
        "",
        ", ".join(f"{p['name']} {p['pct']}%" for p in prof["packages"][:12]),
        "",
        "Top functions by own time:",
        "",
        *_table(["%", "function"], [[str(p["pct"]), f"`{p['name']}`"] for p in prof["self"][:15]]),
        "idp's own functions by inclusive time (where the time goes, by owner):",
        "",
        *_table(["%", "function"], [[str(p["pct"]), f"`{p['name']}`"] for p in prof.get("idp_inclusive", [])[:20]]),
    ]
