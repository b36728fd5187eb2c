"""A server worker ends its start-up with the heap settled (``gc.freeze``), so a full collection does not walk
the whole app while requests wait; an app built anywhere else (tests, embedding) leaves the collector alone."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import idp.app

START = """
import asyncio, gc, sys
from asgi_lifespan import LifespanManager
from idp.app import create_app
from idp.config import Settings
settings = Settings(issuer="http://127.0.0.1:1", database_url="sqlite:///{tmp}/idp.sqlite3", data_dir="{tmp}",
                    kek_file="{tmp}/kek", demo=False)
async def main():
    async with LifespanManager(create_app(settings, settle_heap={settle})):
        print(gc.get_freeze_count())
asyncio.run(main())
"""


def frozen_after_start(template: Path, tmp: Path, settle: bool) -> int:
    shutil.copy(template, tmp / "idp.sqlite3")
    r = subprocess.run(
        [sys.executable, "-c", START.format(tmp=tmp, settle=settle)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return int(r.stdout.strip().splitlines()[-1])


def test_a_worker_settles_its_heap_at_the_end_of_start_up(sqlite_template: Path, tmp_path: Path) -> None:
    # the modules and the services: most of the heap
    assert frozen_after_start(sqlite_template, tmp_path, settle=True) > 50_000


def test_an_app_built_elsewhere_leaves_the_collector_alone(sqlite_template: Path, tmp_path: Path) -> None:
    assert frozen_after_start(sqlite_template, tmp_path, settle=False) == 0


def test_the_uvicorn_factory_asks_for_it(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: dict[str, object] = {}
    monkeypatch.setattr(idp.app, "create_app", lambda **kw: asked.update(kw) or "app")
    monkeypatch.setattr(idp.app, "configure_logging", lambda level: None)
    assert idp.app.app_from_env() == "app"
    assert asked == {"settle_heap": True}
