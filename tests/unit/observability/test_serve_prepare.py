"""`idp serve` puts prometheus-client in multiprocess mode only when it is needed, on a clean directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from idp.observability.metrics import MULTIPROC_ENV
from idp.observability.serve import prepare


@pytest.fixture(autouse=True)
def no_multiproc_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Recorded by monkeypatch even when absent, so whatever ``prepare`` sets is undone after the test."""
    monkeypatch.setenv(MULTIPROC_ENV, "placeholder")
    monkeypatch.delenv(MULTIPROC_ENV)


def test_one_worker_without_a_metrics_port_stays_in_process() -> None:
    assert prepare(1, 0) is None
    assert MULTIPROC_ENV not in os.environ


@pytest.mark.parametrize(("workers", "port"), [(2, 0), (1, 9100)])
def test_several_workers_or_a_metrics_port_get_a_private_directory(workers: int, port: int) -> None:
    path = prepare(workers, port)
    assert path is not None and os.environ[MULTIPROC_ENV] == path and Path(path).is_dir()
    assert not any(Path(path).iterdir())


def test_an_operator_directory_is_cleared_of_a_previous_run(monkeypatch, tmp_path: Path) -> None:
    (tmp_path / "counter_123.db").write_bytes(b"stale")
    (tmp_path / "keep.txt").write_text("not ours")
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    assert prepare(4, 0) == str(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
