"""Medians across rounds, ratios against the peer, the target check, and RESULTS.md."""

from __future__ import annotations

import statistics
from typing import Any

PAIRS = [("idp-pg-2w", "peer-2p"), ("idp-pg-1w", "peer-1p"), ("idp-embedded", "peer-1p")]
MEDIAN_FIELDS = ("rps", "p50_ms", "p99_ms", "cpu_us", "backing_cpu_us", "probe_p50_ms", "probe_p99_ms", "probe_max_ms")
CEILING_FIELDS = ("ceiling_per_s", "hash_ms", "hash_cpu_ms", "hash_cpu_ms_together")  # login: bench.argon2_ceiling
LOGIN_SHARE = 0.8  # target: hosted login >= 80 % of the box's Argon2id ceiling
HEADLINE = "idp-pg-2w"
DASH = "\u2013"  # en dash: "no value" in tables


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def aggregate(results: dict[str, Any]) -> None:
    for row in results["rows"].values():
        for entry in row["targets"].values():
            runs = entry.get("runs") or []
            if not runs:
                continue
            fields = MEDIAN_FIELDS + CEILING_FIELDS
            med: dict[str, Any] = {f: _median([r[f] for r in runs if r.get(f) is not None]) for f in fields}
            med = {k: v for k, v in med.items() if v is not None}
            med["errors"] = sum(r["errors"] for r in runs)
            med["requests"] = sum(r["requests"] for r in runs)
            med["rounds"] = len(runs)
            med["rss_mib"] = runs[-1].get("rss_mib")
            statuses: dict[str, int] = {}
            for r in runs:
                for code, n in r.get("statuses", {}).items():
                    statuses[code] = statuses.get(code, 0) + n
            med["statuses"] = statuses
            entry["median"] = med
    results["side_by_side"] = side_by_side(results)
    results["targets"] = check_targets(results)


def _med(results: dict[str, Any], row: str, target: str) -> dict[str, Any] | None:
    entry = results["rows"].get(row, {}).get("targets", {}).get(target, {})
    return entry.get("median")


def side_by_side(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, row in results["rows"].items():
        line: dict[str, Any] = {"row": key, "title": row["title"], "peer_missing": row.get("peer_missing")}
        for idp, peer in PAIRS:
            a, b = _med(results, key, idp), _med(results, key, peer)
            pair = f"{idp}/{peer}"
            if a and b and b.get("rps"):
                line[pair] = {
                    "idp_rps": a["rps"],
                    "peer_rps": b["rps"],
                    "ratio": round(a["rps"] / b["rps"], 2),
                    "idp_cpu_us": a.get("cpu_us"),
                    "peer_cpu_us": b.get("cpu_us"),
                }
        out.append(line)
    return out


def _get(results: dict[str, Any], row: str, field: str, target: str = HEADLINE) -> float | None:
    med = _med(results, row, target)
    return med.get(field) if med else None


def check_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets (PostgreSQL + Redis, 2 workers) against the medians of this run."""
    t: list[dict[str, Any]] = []

    def add(name: str, want: str, value: float | None, ok: bool | None, unit: str = "") -> None:
        shown = "not measured" if value is None else f"{value:,.0f}{unit}" if value >= 100 else f"{value:g}{unit}"
        t.append({"target": name, "required": want, "measured": shown, "met": None if value is None else ok})

    def ge(v: float | None, x: float) -> bool | None:
        return None if v is None else v >= x

    def le(v: float | None, x: float) -> bool | None:
        return None if v is None else v <= x

    cc = _get(results, "client_credentials", "rps")
    add("client_credentials throughput", ">= 5,000/s", cc, ge(cc, 5000), "/s")
    cpu = _get(results, "client_credentials", "cpu_us")
    add("client_credentials server CPU", "<= 300 µs/token", cpu, le(cpu, 300), " µs")
    peer = _get(results, "client_credentials", "rps", "peer-2p")
    ratio = round(cc / peer, 2) if cc and peer else None
    add("client_credentials vs node-oidc-provider x2 (goal)", ">= 1.2x", ratio, ge(ratio, 1.2), "x")
    for row, label in (("dpop_token", "DPoP token request"), ("dpop_userinfo", "DPoP-bound userinfo")):
        mine, theirs = _get(results, row, "rps"), _get(results, row, "rps", "peer-2p")
        ratio = round(mine / theirs, 2) if mine and theirs else None
        add(f"{label} vs node-oidc-provider x2 (its features.dPoP)", ">= 1.0x", ratio, ge(ratio, 1.0), "x")
    for row, want in (("refresh", 1000), ("code_exchange", 800), ("introspection", 3000)):
        v = _get(results, row, "rps")
        add(f"{row} throughput", f">= {want:,}/s", v, ge(v, want), "/s")
    for row in ("jwks", "discovery"):
        v = _get(results, row, "rps")
        add(f"{row} throughput", ">= 25,000/s", v, ge(v, 25_000), "/s")
    login, ceiling = _get(results, "login", "rps"), _get(results, "login", "ceiling_per_s")
    want = LOGIN_SHARE * ceiling if ceiling else None
    required = (
        f">= 80 % of the measured ceiling ({want:,.0f}/s of {ceiling:,.0f}/s)" if want else "ceiling not measured"
    )
    add("hosted login vs the Argon2id ceiling of the box", required, login, ge(login, want) if want else None, "/s")
    probe = _get(results, "login", "probe_p99_ms")
    add("no stall during logins (discovery p99 beside them)", "<= 50 ms", probe, le(probe, 50), " ms")
    ext = results.get("external", {})
    verify = _find_number(ext.get("resource_verify", {}).get("median", {}), ("verifications_per_core",))
    add("idp.resource verifications per core (a new token each time)", ">= 10,000/s", verify, ge(verify, 10_000), "/s")
    repeat = _find_number(ext.get("resource_verify", {}).get("median", {}), ("repeat_per_core",))
    add("idp.resource, a token it verified before (most requests)", ">= 10,000/s", repeat, ge(repeat, 10_000), "/s")
    mix = ext.get("mixed", {}).get("median", {})
    errors, p99 = mix.get("errors"), mix.get("p99_ms_all")
    add("sustained mixed load (60 s, 2 workers): errors", "0", errors, None if errors is None else errors == 0)
    add("sustained mixed load: p99 over every request", "<= 50 ms", p99, le(p99, 50), " ms")
    scale = ext.get("scale", {}).get("median", {})
    for flow, label in (("refresh", "refresh at 1M stored families"), ("login", "sign-in at 100k users")):
        ratio = scale.get(f"{flow}_cpu_ratio")
        add(f"{label}: server CPU vs empty tables", "<= 1.2x", ratio, le(ratio, 1.2), "x")
    memory = ext.get("denylist_memory", {}).get("median", {})
    per_entry = memory.get("bytes_per_entry_1m")
    add("idp.resource deny-list mirror at 1M entries", "<= 100 bytes/entry", per_entry, le(per_entry, 100), " B")
    flat = memory.get("check_us_1m"), memory.get("check_us_10k")
    ratio = round(flat[0] / flat[1], 2) if flat[0] and flat[1] else None
    add("deny-list check flat (µs at 1M / µs at 10k)", "<= 1.5x", ratio, le(ratio, 1.5), "x")
    lat = _find_number(ext.get("revocation_latency", {}).get("median", {}), ("p99_ms",))
    add("revocation reaches the resource server (p99)", "<= 1 s", lat, None if lat is None else lat <= 1000, " ms")
    limit = 120 * 1e6 / 2**20  # 120 MB in MiB
    for key, label in (("rss_mib_after_warmup", "after warm-up"), ("rss_mib_final", "at the end of the run")):
        modes = results.get("modes", {}).values()
        rss = [x for m in modes if m.get("kind") == "idp" for x in m.get(key) or []]
        worst = max(rss) if rss else None
        add(f"RSS per worker {label} (worst idp mode)", "<= 120 MB", worst, le(worst, limit), " MiB")
    sizes = results.get("modes", {}).get(HEADLINE, {}).get("token_sizes", {})
    for key, label in (
        ("client_credentials_access_token", "client_credentials"),
        ("code_flow_access_token", "code flow (openid profile email offline_access)"),
    ):
        size = sizes.get(key, {}).get("bytes")
        add(f"access token size, {label}", "<= 450 bytes", size, le(size, 450), " B")
    return t


def _find_number(d: dict[str, Any], hints: tuple[str, ...]) -> float | None:
    for hint in hints:
        for k, v in d.items():
            if hint in k and isinstance(v, int | float) and not isinstance(v, bool):
                return float(v)
    return None


def _fmt(v: Any, digits: int = 0) -> str:
    if v is None:
        return DASH
    if isinstance(v, float | int):
        return f"{v:,.{digits}f}"
    return str(v)


def markdown(results: dict[str, Any]) -> str:
    from bench.report_md import render

    return render(results)
