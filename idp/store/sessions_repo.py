"""SQL implementation of :class:`idp.sessions.store.SessionStore` (table ``login_sessions``).

Every method is one Core statement (built once). On PostgreSQL it runs on an autocommit
connection: one round trip, where the ORM and a transaction around it take three (BEGIN, the
statement, COMMIT/ROLLBACK) and the unit of work's CPU. SQLite keeps a transaction per
statement (its BEGIN IMMEDIATE write lock).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import LargeBinary, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from idp.sessions.store import LoginSession
from idp.store.db import single_statements
from idp.store.models import LoginSessionRow

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


def _to_session(row: Any) -> LoginSession:
    amr, factors, *values = row
    used = tuple(sorted(((str(k), float(v)) for k, v in (factors or {}).items()), key=lambda kv: kv[1]))
    return LoginSession(amr=tuple(amr or ()), factors=used, **dict(zip(_FIELDS, values, strict=True)))


def _values(session: LoginSession) -> dict[str, object]:
    return {"amr": list(session.amr), "factors": dict(session.factors)} | {n: getattr(session, n) for n in _FIELDS}


class SqlSessionStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._statement = single_statements(sessions.kw["bind"])

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

    def delete(self, sids: list[str]) -> list[LoginSession]:
        if not sids:
            return []
        with self._statement() as conn:
            rows = conn.execute(delete(_T).where(_T.c.sid.in_(sids)).returning(*_COLUMNS)).all()
        return [_to_session(r) for r in rows]

    def list_for_user(self, user_id: str) -> list[LoginSession]:
        with self._statement() as conn:
            return [_to_session(r) for r in conn.execute(_FOR_USER, {"b_user": user_id})]
