"""Several replicas starting at once on an empty PostgreSQL database (`docker-compose up --scale idp=3`).

Every replica runs `idp db upgrade` and then bootstraps (KEK check value, signing keys) at
the same moment; all of them must come up, with one schema and one keyring.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys

import psycopg
import pytest

from idp.config import load_settings
from idp.store.db import make_engine
from tests.conftest import PG_ADMIN_URL

pytestmark = pytest.mark.timing  # replicas are real processes starting at once


@pytest.fixture
def empty_database(backend) -> str:
    if backend.name != "postgres":
        pytest.skip("replicas share PostgreSQL")
    name = f"idp_replicas_{secrets.token_hex(5)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_three_replicas_migrate_and_bootstrap_one_database_at_once(empty_database: str, tmp_path) -> None:
    kek = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env |= {"IDP_DATABASE_URL": empty_database, "IDP_KEK": kek, "IDP_DATA_DIR": str(tmp_path), "IDP_DEMO": "false"}
    script = (
        "import sys; from idp.cli import main; from idp.bootstrap import bootstrap; "
        "from idp.services import build_services; from idp.config import load_settings; "
        "assert main(['db', 'upgrade']) == 0; c = build_services(load_settings()); bootstrap(c); c.close()"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # noqa: S603
        for _ in range(3)
    ]
    results = [p.communicate(timeout=60) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err.decode()[-1500:]
    engine = make_engine(load_settings(database_url=empty_database).sqlalchemy_url)
    try:
        with engine.connect() as conn:
            (version,) = conn.exec_driver_sql("SELECT count(*) FROM alembic_version").one()
            active = conn.exec_driver_sql(
                "SELECT alg, count(*) FROM signing_keys WHERE state = 'active' GROUP BY alg"
            ).all()
    finally:
        engine.dispose()
    assert version == 1
    assert active and all(n == 1 for _, n in active)
