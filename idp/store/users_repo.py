"""SQL implementation of :class:`idp.users.directory.UserStore`.

The reads (every sign-in looks the user up by name; sessions and tokens by id) are Core
statements built once, on an autocommit connection on PostgreSQL: one round trip and no ORM
unit of work. Writes are rare (registration, password changes) and keep the ORM ``merge``.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from idp.store.db import single_statements
from idp.store.models import UserRow
from idp.users.directory import User

_FIELDS = [f.name for f in fields(User)]
_T = UserRow.__table__
_COLUMNS = [_T.c[name] for name in _FIELDS]
_BY_ID = select(*_COLUMNS).where(_T.c.id == bindparam("b_id"))
_BY_USERNAME = select(*_COLUMNS).where(_T.c.username == bindparam("b_username"))


def _to_user(row: UserRow) -> User:
    return User(**{name: getattr(row, name) for name in _FIELDS})


class SqlUserStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._statement = single_statements(sessions.kw["bind"])

    def _one(self, statement: Select[Any], params: dict[str, str]) -> User | None:
        with self._statement() as conn:
            row = conn.execute(statement, params).first()
        return User(*row) if row else None

    def get(self, user_id: str) -> User | None:
        if "\x00" in user_id:  # no id holds NUL, and PostgreSQL refuses it in a query (DataError, a 500)
            return None
        return self._one(_BY_ID, {"b_id": user_id})

    def by_username(self, username: str) -> User | None:
        if "\x00" in username:
            return None
        return self._one(_BY_USERNAME, {"b_username": username})

    def list(self) -> list[User]:
        with self._sessions() as s:
            return [_to_user(r) for r in s.scalars(select(UserRow).order_by(UserRow.created_at))]

    def save(self, user: User) -> None:
        with self._sessions.begin() as s:
            s.merge(UserRow(**{name: getattr(user, name) for name in _FIELDS}))
