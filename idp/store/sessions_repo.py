"""SQL implementation of :class:`idp.sessions.store.SessionStore` (table ``login_sessions``)."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from idp.sessions.store import LoginSession
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


def _to_session(row: LoginSessionRow) -> LoginSession:
    return LoginSession(amr=tuple(row.amr or ()), **{name: getattr(row, name) for name in _FIELDS})


def _values(session: LoginSession) -> dict[str, object]:
    return {"amr": list(session.amr)} | {name: getattr(session, name) for name in _FIELDS}


class SqlSessionStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def insert(self, digest: bytes, session: LoginSession) -> None:
        with self._sessions.begin() as s:
            s.add(LoginSessionRow(id_digest=digest, **_values(session)))

    def get(self, digest: bytes) -> LoginSession | None:
        with self._sessions() as s:
            row = s.get(LoginSessionRow, digest)
            return _to_session(row) if row else None

    def get_by_sid(self, sid: str) -> LoginSession | None:
        with self._sessions() as s:
            row = s.scalars(select(LoginSessionRow).where(LoginSessionRow.sid == sid)).first()
            return _to_session(row) if row else None

    def update(self, sid: str, session: LoginSession, new_digest: bytes | None = None) -> bool:
        values = _values(session) | ({"id_digest": new_digest} if new_digest is not None else {})
        with self._sessions.begin() as s:
            result = s.execute(update(LoginSessionRow).where(LoginSessionRow.sid == sid).values(**values))
            return result.rowcount > 0

    def delete(self, sids: list[str]) -> list[LoginSession]:
        if not sids:
            return []
        with self._sessions.begin() as s:
            rows = s.scalars(
                delete(LoginSessionRow).where(LoginSessionRow.sid.in_(sids)).returning(LoginSessionRow)
            ).all()
            return [_to_session(r) for r in rows]

    def list_for_user(self, user_id: str) -> list[LoginSession]:
        with self._sessions() as s:
            q = select(LoginSessionRow).where(LoginSessionRow.user_id == user_id)
            return [_to_session(r) for r in s.scalars(q)]
