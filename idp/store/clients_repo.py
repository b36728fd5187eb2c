"""SQL implementation of :class:`idp.clients.registry.ClientStore`, and the SQLite change counter.

On SQLite every save or delete also bumps the ``meta`` row ``clients_version`` in its own
transaction, and :class:`SqliteClientsVersion` reads it on each client lookup: that is how
a server notices a change the CLI made in another process, before its next request. (With
Redis the change is announced on a channel instead; PostgreSQL keeps no counter.)
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import fields

from sqlalchemy import Integer, Text, cast, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from idp.clients.model import Client
from idp.store.models import ClientRow, MetaRow

_FIELDS = [f.name for f in fields(Client)]
VERSION_KEY = "clients_version"
_META = MetaRow.__table__
_BUMP = update(_META).where(_META.c.key == VERSION_KEY).values(value=cast(cast(_META.c.value, Integer) + 1, Text))


def _to_client(row: ClientRow) -> Client:
    return Client(**{name: getattr(row, name) for name in _FIELDS})


class SqlClientStore:
    def __init__(self, sessions: sessionmaker[Session], *, count_changes: bool = False) -> None:
        """``count_changes``: bump ``clients_version`` with every change (SQLite, where writes serialise)."""
        self._sessions = sessions
        self._count = count_changes

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
            deleted = s.execute(delete(ClientRow).where(ClientRow.client_id == client_id)).rowcount > 0
            if deleted:
                self._bump(s)
            return bool(deleted)

    def _bump(self, s: Session) -> None:
        """In the change's transaction, so a reader that sees the new count also sees the change."""
        if not self._count:
            return
        if not s.execute(_BUMP).rowcount:  # type: ignore[attr-defined]
            s.add(MetaRow(key=VERSION_KEY, value="1"))


class SqliteClientsVersion:
    """``clients_version`` read on a connection of its own: one indexed row from the page cache (~3 µs, measured
    with the sqlite3 module on the WAL database), cheap enough for every client lookup, even on the event loop.

    A WAL reader never waits for the writer; ``timeout=0`` makes the rare wait (the WAL being reset) an error
    instead, which the registry treats as "changed" and answers from the store."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def __call__(self) -> int:
        with self._lock:
            if self._conn is None:
                self._conn = sqlite3.connect(
                    f"file:{self._path}?mode=ro", uri=True, timeout=0, check_same_thread=False, isolation_level=None
                )
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (VERSION_KEY,)).fetchone()
        return int(row[0]) if row is not None else 0

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
