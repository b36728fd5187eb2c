"""SQL implementation of :class:`idp.clients.registry.ClientStore`, and readers of its change counter.

Every save or delete also bumps the ``meta`` row ``clients_version`` in the change's own
transaction (on SQLite and PostgreSQL alike). A registry that has no channel telling it of
changes made elsewhere (the CLI runs in another process) reads the counter on each lookup:
:class:`SqliteClientsVersion` on SQLite, :class:`PgClientsVersion` on PostgreSQL without Redis.
With Redis the change is announced on a channel instead (``idp.clients.registry``).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from dataclasses import fields
from pathlib import Path

from sqlalchemy import Engine, Integer, Text, cast, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from idp.clients.model import Client
from idp.store.direct import Direct
from idp.store.models import ClientRow, MetaRow

_FIELDS = [f.name for f in fields(Client)]
VERSION_KEY = "clients_version"
_META = MetaRow.__table__
_BUMP = update(_META).where(_META.c.key == VERSION_KEY).values(value=cast(cast(_META.c.value, Integer) + 1, Text))


def _to_client(row: ClientRow) -> Client:
    return Client(**{name: getattr(row, name) for name in _FIELDS})


class SqlClientStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def get(self, client_id: str) -> Client | None:
        if "\x00" in client_id:  # no id holds NUL, and PostgreSQL refuses it in a query (DataError, a 500)
            return None
        with self._sessions() as s:
            row = s.get(ClientRow, client_id)
            return _to_client(row) if row else None

    def list(self) -> list[Client]:
        with self._sessions() as s:
            return [_to_client(r) for r in s.scalars(select(ClientRow).order_by(ClientRow.created_at))]

    def save(self, client: Client) -> None:
        with self._sessions.begin() as s:
            s.merge(ClientRow(**{name: getattr(client, name) for name in _FIELDS}))
            self._bump(s)

    def delete(self, client_id: str) -> bool:
        if "\x00" in client_id:
            return False
        with self._sessions.begin() as s:
            deleted = s.connection().execute(delete(ClientRow).where(ClientRow.client_id == client_id)).rowcount > 0
            if deleted:
                self._bump(s)
            return bool(deleted)

    def _bump(self, s: Session) -> None:
        """In the change's transaction, so a reader that sees the new count also sees the change. The UPDATE
        locks the row: concurrent changes count one each (PostgreSQL), or are serialised already (SQLite)."""
        if s.connection().execute(_BUMP).rowcount:
            return
        dialect = s.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        # The first change ever: two writers may both find no row; one inserts it, the other counts on it.
        s.execute(insert(_META).values(key=VERSION_KEY, value="0").on_conflict_do_nothing(index_elements=["key"]))
        s.execute(_BUMP)


class SqliteClientsVersion:
    """``clients_version`` read on a connection of its own: one indexed row from the page cache (a few µs,
    bench/RESULTS.md), cheap enough for every client lookup, even on the event loop.

    A WAL reader never waits for the writer; ``timeout=0`` makes the rare wait (the WAL being reset) an error
    instead, which the registry answers from the store for that lookup. The path goes into a ``file:`` URI
    percent-encoded (``?``, ``#`` and ``%`` are legal in a file name). The connection opens here when the
    file exists (``idp db upgrade`` builds the services before it creates the file); otherwise, or after a
    read failed, on the next read."""

    def __init__(self, path: str) -> None:
        self._uri = Path(path).resolve().as_uri() + "?mode=ro"
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        with contextlib.suppress(sqlite3.Error):
            self._conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self._uri, uri=True, timeout=0, check_same_thread=False, isolation_level=None)

    def __call__(self) -> int:
        with self._lock:
            if self._conn is None:
                self._conn = self._connect()
            try:
                row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (VERSION_KEY,)).fetchone()
            except sqlite3.Error:
                self._conn.close()  # opened again on the next read (a file replaced, a connection gone bad)
                self._conn = None
                raise
        return int(row[0]) if row is not None else 0

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class PgClientsVersion:
    """``clients_version`` on PostgreSQL, for a server without Redis: one primary-key SELECT straight through
    psycopg (:mod:`idp.store.direct`), a round trip on a pooled connection per client lookup. It raises
    ``WouldBlock`` inline (``idp.nonblocking``): such a lookup runs in the threadpool."""

    SQL = "SELECT value FROM meta WHERE key = %(key)s"

    def __init__(self, engine: Engine) -> None:
        self._direct = Direct(engine)

    def __call__(self) -> int:
        row = self._direct.fetchone(self.SQL, {"key": VERSION_KEY})
        return int(row[0]) if row is not None else 0
