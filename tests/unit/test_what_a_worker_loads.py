"""What an ``idp serve`` worker imports: the embedded default never loads the PostgreSQL driver, and no
server loads the BFF (each is several MB of every worker's memory, bench/RESULTS.md "RSS")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

WORKER = """
import sys
from idp.app import create_app
from idp.cli import main  # the CLI package, as a uvicorn worker imports it
from idp.config import Settings
from idp.services import build_services
settings = Settings(issuer="http://127.0.0.1:1", database_url="sqlite:///{db}", data_dir="{tmp}",
                    kek_file="{tmp}/kek", demo=False)
build_services(settings)
create_app(settings)
loaded = sorted({{m for m in sys.modules if m == "psycopg" or m.startswith(("psycopg.", "idp.bff"))}})
print(loaded)
sys.exit(1 if loaded else 0)
"""


def test_an_embedded_worker_loads_neither_psycopg_nor_the_bff(tmp_path: Path) -> None:
    code = WORKER.format(db=tmp_path / "idp.sqlite3", tmp=tmp_path)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
