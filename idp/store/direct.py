"""Hot single statements on PostgreSQL, straight through psycopg.

A refresh is two statements and a code exchange one. Through SQLAlchemy most of a one-row
statement's CPU is SQLAlchemy's own (the ``Connection`` and its checkout, the execution context,
a ``cursor.description`` built column by column for the result), several times psycopg's
(bench/RESULTS.md, "Measurements behind design choices"). Here a statement takes a connection
from the SAME pool (its checkout hook still drops dead connections), runs in autocommit as one
round trip, and reads plain tuples.

What SQLAlchemy gave the other statements is kept:

* ``idp.nonblocking.check()`` runs first, as the engine event does for every other statement;
* psycopg errors become SQLAlchemy's ``DBAPIError`` family (parameters hidden: they hold digests),
  so the 503 handler (``idp.web.unavailable``) answers a lost database the same way, and a
  connection that broke is invalidated, not handed back to the pool.

psycopg is imported when a ``Direct`` is made, not with this module: the embedded default (SQLite) never
loads the PostgreSQL driver (about 9 MB of each worker's memory).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement

from idp import nonblocking

if TYPE_CHECKING:
    import psycopg


class Direct:
    """``execute(sql, params)`` of one autocommit statement; ``sql`` uses psycopg's ``%(name)s`` placeholders."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("idp.store.direct is for PostgreSQL (SQLite keeps the SQLAlchemy path)")
        import psycopg
        import psycopg.types.json

        self._engine = engine
        self._pg = psycopg
        self._json = psycopg.types.json.Json

    @staticmethod
    def compiled(statement: ClauseElement) -> str:
        """A SQLAlchemy Core statement as SQL text in psycopg's ``%(name)s`` style."""
        from sqlalchemy.dialects.postgresql.psycopg import dialect

        return str(statement.compile(dialect=dialect()))

    def json(self, value: Any) -> Any:
        """``value`` as a parameter for a ``jsonb`` column."""
        return self._json(value)

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        fairy = self._engine.raw_connection()  # the pool's checkout event runs: dead connections are dropped
        raw = fairy.dbapi_connection
        if not isinstance(raw, self._pg.Connection):
            raise TypeError("Direct needs an engine on psycopg")
        broken = False
        try:
            raw.autocommit = True  # local flag: no round trip (the pool hands connections out idle)
            yield raw
        except self._pg.Error:
            broken = raw.closed or raw.broken
            raise
        finally:
            if broken:
                fairy.invalidate()
            else:
                raw.autocommit = False  # as the pool's other users expect it
            fairy.close()

    def fetchone(self, sql: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        with self._translated(sql), self._connection() as raw:
            return raw.execute(sql, params, prepare=True).fetchone()

    def fetchall(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        with self._translated(sql), self._connection() as raw:
            return raw.execute(sql, params, prepare=True).fetchall()

    def rowcount(self, sql: str, params: Mapping[str, Any]) -> int:
        with self._translated(sql), self._connection() as raw:
            return raw.execute(sql, params, prepare=True).rowcount

    @contextmanager
    def _translated(self, sql: str) -> Iterator[None]:
        nonblocking.check()  # work tried on the event loop goes to a thread instead (idp.nonblocking.run_cached)
        try:
            yield
        except self._pg.Error as exc:
            lost = isinstance(exc, self._pg.OperationalError | self._pg.InterfaceError)
            raise DBAPIError.instance(
                sql, None, exc, self._pg.Error, hide_parameters=True, connection_invalidated=lost
            ) from exc
