"""bench/bff_proxy.py: a tiny bounded run over real processes (upstream, ``idp bff serve``), and its report.

No timing assertions beyond "it measured something and stopped": numbers on a shared box mean nothing.
"""

from __future__ import annotations

import os
import time

from bench import bff_proxy, external, procstat
from bench.report import aggregate
from bench.report_md import render

FIELDS = {"direct_p50_ms", "direct_p99_ms", "bff_p50_ms", "bff_p99_ms", "added_p50_ms", "bff_cpu_us_per_request"}


def test_a_short_run_measures_both_paths_and_stops_its_servers() -> None:
    before = set(procstat.children(os.getpid()))
    started = time.monotonic()
    r = bff_proxy.run(seconds=0.3, max_requests=200)
    assert time.monotonic() - started < 60
    assert r.keys() >= FIELDS
    assert r["errors"] == 0 and 50 <= r["requests_each"] <= 200
    assert r["bff_p50_ms"] > 0 and r["direct_p50_ms"] > 0
    assert r["bff_cpu_us_per_request"] > 0  # the BFF process's own CPU, read from /proc
    assert set(procstat.children(os.getpid())) <= before  # upstream and BFF are gone


def test_wired_into_make_bench_and_reported() -> None:
    assert ("bff_proxy", "bench.bff_proxy") in [(k, m) for k, m, _ in external.EXTERNAL]
    assert "bff_proxy" in external.ONCE
    run = {"requests": 10, "ok": 10, "errors": 0, "rps": 812.0, "p50_ms": 1.5, "p99_ms": 3.0, "cpu_us": 900.0}
    median = {"upstream": "trivial", "store": "sqlite", "requests_each": 100, "errors": 0, "direct_p50_ms": 0.4,
              "direct_p99_ms": 0.9, "bff_p50_ms": 2.1, "bff_p99_ms": 5.0, "added_p50_ms": 1.7,
              "bff_cpu_us_per_request": 1500.0}  # fmt: skip
    results = {
        "meta": {
            "started": "now", "argv": [], "rounds": 1, "duration_s": 1, "connections": 16, "wrk_threads": 2,
            "elapsed_s": 1.0, "machine": {"cpu_model": "x", "cores": 2, "ram_gib": 1, "kernel": "k", "os": "o",
                                          "load_average": [0, 0, 0]},
        },
        "modes": {"idp-pg-2w": {"kind": "idp", "backend": "postgres", "workers": 2}},
        "rows": {"token_exchange": {"title": "Token exchange", "targets": {"idp-pg-2w": {"runs": [run]}}}},
        "external": {"bff_proxy": {"title": "BFF proxy", "module": "bench.bff_proxy", "function": "run",
                                   "runs": [median], "median": median}},
    }  # fmt: skip
    aggregate(results)
    text = render(results)
    section = text[text.index("## BFF proxy") :]
    assert "| through the BFF | 2.10 | 5.00 | 1,500 |" in section
    assert "| added by the BFF | 1.70 |" in section
    assert "| `idp-pg-2w` | 812 | 1.50 | 900 |" in section  # the token exchange row's rate
