"""SQL implementations of :class:`idp.sessions.factors.model.FactorStore` and ``RecoveryCodeStore``.

The writes that must hold under concurrency are one conditional UPDATE each: a TOTP step is accepted only
when newer than the recorded one, a recovery code is spent only while unspent; the row count says
which concurrent caller won.
"""

from __future__ import annotations

from dataclasses import fields

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from idp.sessions.factors.model import Factor
from idp.store.db import single_statements
from idp.store.models import FactorRow, RecoveryCodeRow

_FIELDS = [f.name for f in fields(Factor)]
_F = FactorRow.__table__
_R = RecoveryCodeRow.__table__
_COLUMNS = [_F.c[name] for name in _FIELDS]


def _to_factor(row: object) -> Factor:
    values = dict(zip(_FIELDS, row, strict=True))  # type: ignore[call-overload]
    values["data"] = dict(values["data"] or {})
    return Factor(**values)


class SqlFactorStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._statement = single_statements(sessions.kw["bind"])

    def add(self, factor: Factor) -> None:
        with self._statement() as conn:
            conn.execute(insert(_F).values(**{name: getattr(factor, name) for name in _FIELDS}))

    def get(self, factor_id: str) -> Factor | None:
        if not factor_id or len(factor_id) > 64 or "\x00" in factor_id:
            return None
        with self._statement() as conn:
            row = conn.execute(select(*_COLUMNS).where(_F.c.id == factor_id)).first()
        return _to_factor(row) if row else None

    def list_for_user(self, user_id: str) -> list[Factor]:
        with self._statement() as conn:
            rows = conn.execute(select(*_COLUMNS).where(_F.c.user_id == user_id).order_by(_F.c.created_at)).all()
        return [_to_factor(r) for r in rows]

    def accept_step(self, factor_id: str, step: int, at: float, *, confirm: bool = False) -> bool:
        values: dict[str, object] = {"last_step": step, "last_used_at": at}
        if confirm:
            values["confirmed_at"] = at
        statement = (
            update(_F)
            .where(_F.c.id == factor_id, or_(_F.c.last_step.is_(None), _F.c.last_step < step))  # RFC 6238 §5.2
            .values(**values)
        )
        with self._statement() as conn:
            return conn.execute(statement).rowcount > 0

    def delete(self, user_id: str, factor_ids: list[str] | None = None) -> list[Factor]:
        statement = delete(_F).where(_F.c.user_id == user_id)
        if factor_ids is not None:
            if not factor_ids:
                return []
            statement = statement.where(_F.c.id.in_(factor_ids))
        with self._statement() as conn:
            rows = conn.execute(statement.returning(*_COLUMNS)).all()
        return [_to_factor(r) for r in rows]


class SqlRecoveryCodeStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._engine = sessions.kw["bind"]
        self._statement = single_statements(self._engine)

    def replace(self, user_id: str, digests: list[bytes], at: float) -> None:
        with self._engine.begin() as conn:  # the old codes and the new, one transaction
            conn.execute(delete(_R).where(_R.c.user_id == user_id))
            if digests:
                conn.execute(insert(_R), [{"user_id": user_id, "digest": d, "created_at": at} for d in digests])

    def use(self, user_id: str, digest: bytes, at: float) -> bool:
        statement = (
            update(_R)
            .where(_R.c.user_id == user_id, _R.c.digest == digest, _R.c.used_at.is_(None))  # one-time
            .values(used_at=at)
        )
        with self._statement() as conn:
            return conn.execute(statement).rowcount > 0

    def remaining(self, user_id: str) -> int:
        statement = select(func.count()).select_from(_R).where(_R.c.user_id == user_id, _R.c.used_at.is_(None))
        with self._statement() as conn:
            return int(conn.execute(statement).scalar() or 0)

    def delete(self, user_id: str) -> int:
        with self._statement() as conn:
            return conn.execute(delete(_R).where(_R.c.user_id == user_id)).rowcount
