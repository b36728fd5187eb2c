"""The hosted-login target is a share of the Argon2id ceiling measured in the same run."""

from __future__ import annotations

from typing import Any

from bench import argon2_ceiling
from bench.report import aggregate
from bench.report_md import render

SMALL = {"memory_kib": 64, "time_cost": 1, "parallelism": 1}


def test_the_ceiling_is_measured_with_one_process_per_core() -> None:
    got = argon2_ceiling.measure(SMALL, seconds=0.2, processes=2)
    assert got["ceiling_processes"] == 2
    assert got["ceiling_per_s"] > 0
    assert 0 < got["hash_ms"] < 1000
    assert got["hash_cpu_ms"] > 0 and got["hash_cpu_ms_together"] > 0


def results(rps: float, ceilings: list[float | None]) -> dict[str, Any]:
    runs = [
        {"requests": 100, "ok": 100, "errors": 0, "rps": rps, "p50_ms": 1.0, "p99_ms": 2.0, "cpu_us": 25_000.0}
        | ({"ceiling_per_s": c, "hash_ms": 21.0, "hash_cpu_ms": 20.5, "hash_cpu_ms_together": 21.5} if c else {})
        for c in ceilings
    ]
    return {
        "meta": {
            "started": "now", "argv": [], "rounds": len(runs), "duration_s": 1, "connections": 16, "wrk_threads": 2,
            "elapsed_s": 1.0, "machine": {"cpu_model": "x", "cores": 2, "ram_gib": 1, "kernel": "k", "os": "o",
                                          "load_average": [0, 0, 0]},
        },
        "modes": {"idp-pg-2w": {"kind": "idp", "backend": "postgres", "workers": 2,
                                "argon2": {"memory_kib": 19456, "time_cost": 2, "parallelism": 1}}},
        "rows": {"login": {"title": "Hosted login", "targets": {"idp-pg-2w": {"runs": runs}}}},
    }  # fmt: skip


def login_target(res: dict[str, Any]) -> dict[str, Any]:
    aggregate(res)
    return next(t for t in res["targets"] if t["target"].startswith("hosted login"))


def test_the_target_is_80_percent_of_the_median_ceiling() -> None:
    target = login_target(results(75.0, [90.0, 95.0, 200.0]))  # median ceiling 95/s: 76/s wanted
    assert target["required"] == ">= 80 % of the measured ceiling (76/s of 95/s)"
    assert target["met"] is False
    assert login_target(results(77.0, [90.0, 95.0, 200.0]))["met"] is True


def test_results_md_states_the_ceiling_it_compares_against() -> None:
    res = results(77.0, [95.0])
    aggregate(res)
    md = render(res)
    assert "ceiling 95.0 verifications/s (21.5 ms CPU each); one verification alone 21.0 ms" in md
    assert "logins 77.0/s, 81% of it" in md


def test_without_a_ceiling_the_target_is_not_judged() -> None:
    target = login_target(results(77.0, [None]))
    assert target["met"] is None
    assert target["required"] == "ceiling not measured"
