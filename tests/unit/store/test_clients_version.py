"""The SQLite change counter: read from any legal file name, also when the file comes after the reader."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from idp.clients.registry import ClientRegistry
from idp.clock import FrozenClock
from idp.crypto import Digester
from idp.store.clients_repo import SqlClientStore, SqliteClientsVersion
from idp.store.db import make_engine, make_sessionmaker


def test_a_data_path_with_uri_characters_is_read(tmp_path: Path, sqlite_template: Path) -> None:
    folder = tmp_path / "data?mode=rw#x%41"
    folder.mkdir()
    db = folder / "idp.sqlite3"
    shutil.copy(sqlite_template, db)
    engine = make_engine(URL.create("sqlite+pysqlite", database=str(db)).render_as_string())
    version = SqliteClientsVersion(str(db))
    try:
        registry = ClientRegistry(
            SqlClientStore(make_sessionmaker(engine)), Digester(b"k" * 32), FrozenClock(1000.0),
            issuer="https://idp.test", api_audience="https://idp.test/api", version=version,
        )  # fmt: skip
        before = version()
        client, _ = registry.create(name="Billing", kind="service", scope="api:read")
        assert version() == before + 1  # the counter of THIS file, not of "data" nor an error
        registry.update(client.client_id, name="Billing 2")
        assert version() == before + 2
    finally:
        version.close()
        engine.dispose()


def test_a_file_created_after_startup_is_read_once_it_exists(tmp_path: Path, sqlite_template: Path) -> None:
    db = tmp_path / "idp.sqlite3"
    version = SqliteClientsVersion(str(db))  # ``idp db upgrade``: the container comes before the file
    try:
        with pytest.raises(sqlite3.OperationalError):
            version()
        shutil.copy(sqlite_template, db)
        assert version() >= 0
    finally:
        version.close()
