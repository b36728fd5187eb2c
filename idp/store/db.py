"""Engine construction and the schema-version gate."""

from __future__ import annotations

import os
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def _migrations_dir() -> Path:
    """Next to the package in a checkout or editable install; else ./migrations (the Docker image's /app)."""
    for candidate in (
        os.environ.get("IDP_MIGRATIONS_DIR"),
        Path(__file__).resolve().parents[2] / "migrations",
        Path.cwd() / "migrations",
    ):
        if candidate and (Path(candidate) / "env.py").exists():
            return Path(candidate)
    raise RuntimeError("cannot find the migrations folder; set IDP_MIGRATIONS_DIR")


MIGRATIONS = _migrations_dir()
MIGRATION_LOCK = 0x1D9_0001  # pg_advisory_xact_lock key for `idp db upgrade`


class SchemaError(Exception):
    """The database is not at this code's schema version."""


def make_engine(url: str, *, pool_size: int = 20) -> Engine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=pool_size)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # WAL lets readers run beside the one writer; foreign keys are off by default in SQLite.
            dbapi_conn.isolation_level = None  # let the "begin" hook below own transactions
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
            # Take the write lock at BEGIN so read-then-write transactions serialise instead of failing.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True, pool_recycle=1800)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
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


def check_schema(engine: Engine) -> None:
    """Refuse to run on an un-migrated or newer schema."""
    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current is None:
        raise SchemaError("the database has no schema yet: run `idp db upgrade`")
    if current != head:
        known = ScriptDirectory.from_config(alembic_config(str(engine.url)))
        try:
            known.get_revision(current)
        except Exception:
            raise SchemaError(
                f"the database schema ({current}) is newer than this idp knows ({head}): upgrade idp"
            ) from None
        raise SchemaError(f"the database schema ({current}) is behind ({head}): run `idp db upgrade`")
