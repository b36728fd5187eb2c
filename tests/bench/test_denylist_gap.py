"""``python -m bench.denylist_gap`` runs, and counts what the gap read saves: the worker a version behind reads
the missing version with its own write's catch-up in one statement (six a write on SQLite, seven without)."""

from __future__ import annotations

from bench.denylist_gap import run


def test_the_behind_worker_pays_one_read_per_catch_up() -> None:
    result = run(backend="embedded", n=20)
    assert result["n"] == 20 and result["cpu_us_per_write"] > 0
    assert result["statements_per_write"] < 7.0, result  # 6.35 at n=20 (7.35 with a version read first)
