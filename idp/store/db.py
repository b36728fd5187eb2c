"""Engine construction and the schema-version gate."""

from __future__ import annotations

import select
import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from idp import nonblocking

# Alembic's package-resource form: the scripts are package data of idp, wherever it is installed.
MIGRATIONS = "idp:migrations"
MIGRATION_LOCK = 0x1D9_0001  # pg_advisory_xact_lock key for `idp db upgrade`
# The newest revision in idp/migrations/versions (a test keeps them equal). Checking it needs one SELECT and no
# alembic import: alembic and its templates cost each server worker ~11 MB of RSS.
SCHEMA_HEAD = "0007"


class SchemaError(Exception):
    """The database is not at this code's schema version."""


def make_engine(url: str, *, pool_size: int = 20) -> Engine:
    engine = _make_engine(url, pool_size=pool_size)
    event.listen(engine, "before_cursor_execute", _no_io_inline)
    return engine


def _no_io_inline(*args: Any) -> None:
    nonblocking.check()  # raises WouldBlock for work tried on the event loop (idp.nonblocking.run_cached)


def _make_engine(url: str, *, pool_size: int) -> Engine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        writer = _WriterLock()
        connect_args = {"check_same_thread": False, "timeout": 30, "factory": writer.connection_class()}
        engine = create_engine(url, connect_args=connect_args, pool_size=pool_size)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
            # WAL lets readers run beside the one writer; foreign keys are off by default in SQLite.
            # synchronous=FULL: a commit is on disk (the WAL fsynced) before it returns, so a response sent
            # after it survives a power loss too (NORMAL would only survive a crash of this process).
            dbapi_conn.isolation_level = None  # let the "begin" hook below own transactions
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # Take the write lock at BEGIN so read-then-write transactions serialise instead of failing. This
            # process's transactions queue on a lock first (one writer at a time, woken the moment the last
            # one commits): SQLite's own busy handler polls with sleeps of up to 100 ms, which is where long
            # tails came from. Other processes (the CLI) still meet SQLite's lock and its busy timeout.
            raw = conn.connection.dbapi_connection
            writer.acquire(raw)
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                writer.release(raw)
                raise

        return engine
    engine = create_engine(url, pool_size=pool_size, max_overflow=10, pool_recycle=1800)
    event.listen(engine, "checkout", _drop_dead_connection)
    return engine


class _WriterLock:
    """One transaction at a time per SQLite database in this process; released when it commits or rolls back."""

    TIMEOUT = 30.0  # as SQLite's busy_timeout

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holder: object | None = None

    def acquire(self, raw: object) -> None:
        if not self._lock.acquire(timeout=self.TIMEOUT):
            raise sqlite3.OperationalError("database is locked (another transaction of this process held it)")
        self._holder = raw

    def release(self, raw: object) -> None:
        if self._holder is raw:
            self._holder = None
            self._lock.release()

    def connection_class(self) -> type[sqlite3.Connection]:
        writer = self

        class WriterConnection(sqlite3.Connection):
            def commit(self) -> None:
                try:
                    super().commit()
                finally:
                    writer.release(self)

            def rollback(self) -> None:
                try:
                    super().rollback()
                finally:
                    writer.release(self)

            def close(self) -> None:
                try:
                    super().close()
                finally:
                    writer.release(self)

        return WriterConnection


def _drop_dead_connection(dbapi_conn: Any, record: Any, proxy: Any) -> None:
    """A pre-ping without the round trip: an idle PostgreSQL connection has nothing to read unless the server
    has ended it (a FATAL "terminating connection" message, then EOF: restarts, ``pg_terminate_backend``,
    idle timeouts). Raising DisconnectionError makes the pool discard it and check out another. A
    ``SELECT 1`` per checkout (``pool_pre_ping``) cost a round trip on every hot request; a connection that
    dies silently (a network partition) fails its first statement instead, which the 503 handler answers.
    """
    if dbapi_conn.closed or dbapi_conn.pgconn.socket < 0:
        raise exc.DisconnectionError("connection closed")
    poller = select.poll()
    poller.register(dbapi_conn.pgconn.socket, select.POLLIN)
    if poller.poll(0):
        raise exc.DisconnectionError("the server ended the connection")


def single_statements(engine: Engine) -> Callable[[], AbstractContextManager[Connection]]:
    """Connections for work that is ONE statement (or, on SQLite, a few that must commit together).

    On PostgreSQL in autocommit: the statement is its own transaction and costs one round trip, not
    BEGIN, statement, COMMIT. On SQLite a committed transaction (the begin hook takes the write lock).
    """
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT").connect
    return engine.begin


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS)
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> None:
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Replicas starting together (compose --scale) migrate one at a time; the lock is held until commit,
            # so the others then find the schema at head and do nothing.
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except DBAPIError:  # no such table: never migrated
            return None


def check_schema(engine: Engine) -> None:
    """Refuse to run on an un-migrated or newer schema."""
    current = current_revision(engine)
    if current == SCHEMA_HEAD:
        return
    if current is None:
        raise SchemaError("the database has no schema yet: run `idp db upgrade`")
    from alembic.script import ScriptDirectory

    known = ScriptDirectory.from_config(alembic_config(str(engine.url)))
    try:
        known.get_revision(current)
    except Exception:
        raise SchemaError(
            f"the database schema ({current}) is newer than this idp knows ({SCHEMA_HEAD}): upgrade idp"
        ) from None
    raise SchemaError(f"the database schema ({current}) is behind ({SCHEMA_HEAD}): run `idp db upgrade`")
