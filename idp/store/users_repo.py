"""SQL implementation of :class:`idp.users.directory.UserStore`."""

from __future__ import annotations

from dataclasses import fields

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from idp.store.models import UserRow
from idp.users.directory import User

_FIELDS = [f.name for f in fields(User)]


def _to_user(row: UserRow) -> User:
    return User(**{name: getattr(row, name) for name in _FIELDS})


class SqlUserStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def get(self, user_id: str) -> User | None:
        if "\x00" in user_id:  # no id holds NUL, and PostgreSQL refuses it in a query (DataError, a 500)
            return None
        with self._sessions() as s:
            row = s.get(UserRow, user_id)
            return _to_user(row) if row else None

    def by_username(self, username: str) -> User | None:
        if "\x00" in username:
            return None
        with self._sessions() as s:
            row = s.scalars(select(UserRow).where(UserRow.username == username)).first()
            return _to_user(row) if row else None

    def list(self) -> list[User]:
        with self._sessions() as s:
            return [_to_user(r) for r in s.scalars(select(UserRow).order_by(UserRow.created_at))]

    def save(self, user: User) -> None:
        with self._sessions.begin() as s:
            s.merge(UserRow(**{name: getattr(user, name) for name in _FIELDS}))
