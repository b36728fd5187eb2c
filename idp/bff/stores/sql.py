"""The SQL store (SQLAlchemy 2; SQLite or PostgreSQL through psycopg).

The BFF is a component apart from idp: its tables (``bff_sessions``, ``bff_leases``, ``bff_logins``,
``bff_login_slots``) belong to a
MetaData of its own, created with ``create_all`` when the store opens (no Alembic: the BFF has no schema
history to carry yet, and it never shares idp's migration head). Each method is one statement, run in a
worker thread (the engine is synchronous), so each is atomic on both databases:

* ``replace``: ``UPDATE … WHERE key = ? AND version = ? AND expires_at > now`` (compare-and-set);
* ``lease``: ``INSERT … ON CONFLICT (key) DO UPDATE … WHERE bff_leases.until <= now RETURNING owner`` (a
  row comes back only for the one writer that found the lease free or lapsed);
* ``take_login``: ``DELETE … WHERE key = ? RETURNING …`` (the one taker that deleted the row gets it);
* ``claim_slot``: ``INSERT … ON CONFLICT (key) DO UPDATE … WHERE n < limit OR lapsed RETURNING n``.

Expired rows are filtered from every read and purged when a session or a login record is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from anyio import to_thread
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from idp.bff.sealing import SessionCrypto, from_login_row, from_record, to_login_row, to_record
from idp.bff.session import BffSession, LoginRecord
from idp.clock import Clock

T = TypeVar("T")

metadata = sa.MetaData()

sessions = sa.Table(
    "bff_sessions",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),  # HMAC-SHA256 of the cookie's id, hex
    sa.Column("sub", sa.String(255), nullable=False, index=True),
    sa.Column("sid", sa.String(255), nullable=True, index=True),
    sa.Column("claims", sa.Text, nullable=False),
    sa.Column("tokens", sa.Text, nullable=False),  # AES-256-GCM, associated data = key
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("extra", sa.Text, nullable=False),
)

leases = sa.Table(
    "bff_leases",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("owner", sa.String(255), nullable=False),
    sa.Column("until", sa.Float, nullable=False, index=True),
)


logins = sa.Table(
    "bff_logins",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),  # HMAC-SHA256 of the login cookie's id, hex
    sa.Column("flow", sa.Text, nullable=False),  # AES-256-GCM, associated data = "login:" + key
    sa.Column("return_to", sa.String(1024), nullable=False),
    sa.Column("slot", sa.String(255), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
)

login_slots = sa.Table(
    "bff_login_slots",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("until", sa.Float, nullable=False, index=True),
)


def sqlalchemy_url(url: str) -> str:
    """sqlite:///PATH and postgresql://… with the drivers installed (pysqlite, psycopg 3)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite://"):
        return "sqlite+pysqlite://" + url[len("sqlite://") :]
    return url


def make_engine(url: str) -> Engine:
    url = sqlalchemy_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: object) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers beside the one writer
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


class SqlSessionStore:
    def __init__(self, engine: Engine, crypto: SessionCrypto, clock: Clock, *, owns_engine: bool = False) -> None:
        self.engine = engine
        self._crypto = crypto
        self._clock = clock
        self._owns_engine = owns_engine
        try:
            metadata.create_all(engine, checkfirst=True)
        except sa.exc.DBAPIError:  # another worker created them between the check and the CREATE
            metadata.create_all(engine, checkfirst=True)
        self._insert: Callable[..., Any] = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    @classmethod
    def from_url(cls, url: str, crypto: SessionCrypto, clock: Clock) -> SqlSessionStore:
        return cls(make_engine(url), crypto, clock, owns_engine=True)

    async def _run(self, fn: Callable[[], T]) -> T:
        return await to_thread.run_sync(fn)

    async def create(self, session: BffSession) -> None:
        record = to_record(self._crypto, session)
        now = self._clock.now()

        def write() -> None:
            with self.engine.begin() as conn:
                conn.execute(sa.delete(sessions).where(sessions.c.expires_at <= now))
                conn.execute(sa.delete(leases).where(leases.c.until <= now))
                conn.execute(sa.insert(sessions).values(**record))

        await self._run(write)

    async def get(self, key: str) -> BffSession | None:
        now = self._clock.now()

        def read() -> dict[str, Any] | None:
            with self.engine.connect() as conn:
                row = conn.execute(
                    sa.select(sessions).where(sessions.c.key == key, sessions.c.expires_at > now)
                ).first()
            return dict(row._mapping) if row is not None else None

        record = await self._run(read)
        return from_record(self._crypto, record) if record is not None else None

    async def replace(self, session: BffSession, *, expected_version: int) -> bool:
        record = to_record(self._crypto, session)
        now = self._clock.now()
        values = {k: v for k, v in record.items() if k not in ("key", "created_at")}

        def write() -> bool:
            with self.engine.begin() as conn:
                result = conn.execute(
                    sa.update(sessions)
                    .where(
                        sessions.c.key == session.key,
                        sessions.c.version == expected_version,
                        sessions.c.expires_at > now,
                    )
                    .values(**values)
                )
            return result.rowcount == 1

        return await self._run(write)

    async def delete(self, key: str) -> None:
        def write() -> None:
            with self.engine.begin() as conn:
                conn.execute(sa.delete(sessions).where(sessions.c.key == key))

        await self._run(write)

    async def _delete_where(self, column: sa.Column[Any], value: str) -> int:
        now = self._clock.now()

        def write() -> int:
            with self.engine.begin() as conn:
                ended = conn.execute(sa.delete(sessions).where(column == value).returning(sessions.c.expires_at))
                return sum(1 for (expires_at,) in ended if expires_at > now)

        return await self._run(write)

    async def delete_by_sid(self, sid: str) -> int:
        return await self._delete_where(sessions.c.sid, sid)

    async def delete_by_sub(self, sub: str) -> int:
        return await self._delete_where(sessions.c.sub, sub)

    async def lease(self, key: str, owner: str, ttl: float) -> bool:
        now = self._clock.now()
        stmt = (
            self._insert(leases)
            .values(key=key, owner=owner, until=now + ttl)
            .on_conflict_do_update(
                index_elements=[leases.c.key],
                set_={"owner": owner, "until": now + ttl},
                where=leases.c.until <= now,
            )
            .returning(leases.c.owner)
        )

        def write() -> bool:
            with self.engine.begin() as conn:
                return conn.execute(stmt).first() is not None

        return await self._run(write)

    async def release(self, key: str, owner: str) -> None:
        def write() -> None:
            with self.engine.begin() as conn:
                conn.execute(sa.delete(leases).where(leases.c.key == key, leases.c.owner == owner))

        await self._run(write)

    async def put_login(self, record: LoginRecord) -> None:
        row = to_login_row(self._crypto, record)
        now = self._clock.now()

        def write() -> None:
            with self.engine.begin() as conn:
                conn.execute(sa.delete(logins).where(logins.c.expires_at <= now))
                conn.execute(sa.delete(login_slots).where(login_slots.c.until <= now))
                conn.execute(sa.insert(logins).values(**row))

        await self._run(write)

    async def take_login(self, key: str) -> LoginRecord | None:
        def write() -> dict[str, Any] | None:
            with self.engine.begin() as conn:
                row = conn.execute(sa.delete(logins).where(logins.c.key == key).returning(*logins.c)).first()
            return dict(row._mapping) if row is not None else None

        row = await self._run(write)
        if row is None or float(row["expires_at"]) <= self._clock.now():
            return None
        return from_login_row(self._crypto, row)

    async def claim_slot(self, counter: str, limit: int, ttl: float) -> bool:
        now = self._clock.now()
        lapsed = login_slots.c.until <= now
        stmt = (
            self._insert(login_slots)
            .values(key=counter, n=1, until=now + ttl)
            .on_conflict_do_update(
                index_elements=[login_slots.c.key],
                set_={
                    "n": sa.case((lapsed, 1), else_=login_slots.c.n + 1),
                    "until": sa.case((lapsed, now + ttl), else_=login_slots.c.until),
                },
                where=sa.or_(lapsed, login_slots.c.n < limit),
            )
            .returning(login_slots.c.n)
        )

        def write() -> bool:
            with self.engine.begin() as conn:
                return conn.execute(stmt).first() is not None

        return await self._run(write)

    async def slots_taken(self, counter: str) -> int:
        now = self._clock.now()

        def read() -> int:
            with self.engine.connect() as conn:
                n = conn.execute(
                    sa.select(login_slots.c.n).where(login_slots.c.key == counter, login_slots.c.until > now)
                ).scalar()
            return int(n or 0)

        return await self._run(read)

    async def free_slot(self, counter: str) -> None:
        now = self._clock.now()

        def write() -> None:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.update(login_slots)
                    .where(login_slots.c.key == counter, login_slots.c.n > 0, login_slots.c.until > now)
                    .values(n=login_slots.c.n - 1)
                )

        await self._run(write)

    async def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()
