"""SQL implementation of :class:`idp.sessions.store.SessionStore` (table ``login_sessions``).

Every method is one Core statement (built once). On PostgreSQL it runs on an autocommit
connection: one round trip, where the ORM and a transaction around it take three (BEGIN, the
statement, COMMIT/ROLLBACK) and the unit of work's CPU. SQLite keeps a transaction per
statement (its BEGIN IMMEDIATE write lock).

Ending sessions is the exception: with participants (``on_end``, the back-channel logout outbox) it is one
transaction that locks the sessions, reads the clients each signed into (``session_clients``), deletes
them and lets every participant write in the same commit, so what the end owes is never lost nor written
for an end that rolled back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, LargeBinary, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from idp.sessions.store import LoginSession
from idp.store.db import single_statements
from idp.store.models import LoginSessionRow, SessionClientRow

EndParticipant = Callable[[Connection, list[LoginSession], dict[str, list[str]], str], None]
"""Called inside the transaction that ends sessions: (connection, the sessions ended, sid -> the clients it
signed into, the reason). What it writes commits with the end, or not at all."""

_FIELDS = (
    "sid",
    "user_id",
    "auth_time",
    "csrf_secret",
    "created_at",
    "last_seen_at",
    "idle_expires_at",
    "absolute_expires_at",
    "user_agent",
    "ip",
)
_T = LoginSessionRow.__table__
_COLUMNS = [_T.c.amr, _T.c.factors, *(_T.c[name] for name in _FIELDS)]
_GET = select(*_COLUMNS).where(_T.c.id_digest == bindparam("digest", type_=LargeBinary))
_GET_BY_SID = select(*_COLUMNS).where(_T.c.sid == bindparam("b_sid")).limit(1)
_FOR_USER = select(*_COLUMNS).where(_T.c.user_id == bindparam("b_user"))
_INSERT = insert(_T)
_SLIDE = (
    update(_T)
    .where(_T.c.id_digest == bindparam("digest", type_=LargeBinary))
    .values(last_seen_at=bindparam("b_seen"), idle_expires_at=bindparam("b_idle"))
)


_SC = SessionClientRow.__table__
_SIGNED_INTO = insert(_SC)


def _to_session(row: Any) -> LoginSession:
    amr, factors, *values = row
    used = tuple(sorted(((str(k), float(v)) for k, v in (factors or {}).items()), key=lambda kv: kv[1]))
    return LoginSession(amr=tuple(amr or ()), factors=used, **dict(zip(_FIELDS, values, strict=True)))


def _values(session: LoginSession) -> dict[str, object]:
    return {"amr": list(session.amr), "factors": dict(session.factors)} | {n: getattr(session, n) for n in _FIELDS}


class SqlSessionStore:
    def __init__(self, sessions: sessionmaker[Session], on_end: Sequence[EndParticipant] = ()) -> None:
        self._engine = sessions.kw["bind"]
        self._statement = single_statements(self._engine)
        self.on_end: list[EndParticipant] = list(on_end)

    def insert(self, digest: bytes, session: LoginSession) -> None:
        with self._statement() as conn:
            conn.execute(_INSERT, {"id_digest": digest} | _values(session))

    def get(self, digest: bytes) -> LoginSession | None:
        with self._statement() as conn:
            row = conn.execute(_GET, {"digest": digest}).first()
        return _to_session(row) if row else None

    def get_by_sid(self, sid: str) -> LoginSession | None:
        with self._statement() as conn:
            row = conn.execute(_GET_BY_SID, {"b_sid": sid}).first()
        return _to_session(row) if row else None

    def update(self, digest: bytes, session: LoginSession, new_digest: bytes | None = None) -> bool:
        values = _values(session) | ({"id_digest": new_digest} if new_digest is not None else {})
        with self._statement() as conn:
            result = conn.execute(update(_T).where(_T.c.id_digest == digest).values(**values))
            return result.rowcount > 0

    def slide(self, digest: bytes, last_seen_at: float, idle_expires_at: float) -> bool:
        with self._statement() as conn:
            result = conn.execute(_SLIDE, {"digest": digest, "b_seen": last_seen_at, "b_idle": idle_expires_at})
            return result.rowcount > 0

    def delete(self, sids: list[str], *, reason: str = "") -> list[LoginSession]:
        if not sids:
            return []
        if not self.on_end:
            with self._statement() as conn:
                rows = conn.execute(delete(_T).where(_T.c.sid.in_(sids)).returning(*_COLUMNS)).all()
            return [_to_session(r) for r in rows]
        with self._engine.begin() as conn:
            # Lock the rows first: a concurrent signed_into (its foreign key takes a share lock on the session)
            # then waits for this commit and finds the session gone, instead of adding a client unseen here.
            locked = conn.execute(select(_T.c.sid).where(_T.c.sid.in_(sids)).with_for_update()).scalars().all()
            if not locked:
                return []
            clients: dict[str, list[str]] = {}
            for sid, client_id in conn.execute(select(_SC.c.sid, _SC.c.client_id).where(_SC.c.sid.in_(locked))):
                clients.setdefault(sid, []).append(client_id)
            ended = [_to_session(r) for r in conn.execute(delete(_T).where(_T.c.sid.in_(locked)).returning(*_COLUMNS))]
            conn.execute(delete(_SC).where(_SC.c.sid.in_(locked)))  # SQLite without the cascade's pragma too
            for participant in self.on_end:
                participant(conn, ended, clients, reason)
        return ended

    def signed_into(self, sid: str, client_id: str, now: float) -> None:
        """Remember that this session signed into ``client_id`` (once); nothing when the session has ended."""
        try:
            with self._statement() as conn:
                exists = conn.execute(select(_SC.c.sid).where(_SC.c.sid == sid, _SC.c.client_id == client_id)).first()
                if exists is None:
                    conn.execute(_SIGNED_INTO, {"sid": sid, "client_id": client_id, "created_at": now})
        except IntegrityError:
            pass  # the session ended meanwhile (foreign key), or a concurrent call recorded it first

    def list_for_user(self, user_id: str) -> list[LoginSession]:
        with self._statement() as conn:
            return [_to_session(r) for r in conn.execute(_FOR_USER, {"b_user": user_id})]
