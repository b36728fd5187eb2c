"""``idp serve`` caps glibc's malloc arenas for itself and its workers, unless the operator chose a number."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys

import pytest

from idp.cli.serve import MALLOC_ARENAS, limit_malloc_arenas

GLIBC = ctypes.util.find_library("c") is not None and os.confstr("CS_GNU_LIBC_VERSION") is not None


def test_an_operators_value_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "6")
    assert limit_malloc_arenas() is False
    assert os.environ["MALLOC_ARENA_MAX"] == "6"


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_the_cap_applies_here_and_reaches_spawned_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "")  # recorded, so the value set below is undone after the test
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert limit_malloc_arenas() is True
    seen = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ.get('MALLOC_ARENA_MAX'))"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert seen.stdout.strip() == str(MALLOC_ARENAS)
