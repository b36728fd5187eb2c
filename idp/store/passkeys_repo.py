"""SQL implementation of :class:`idp.sessions.passkeys.PasskeyStore`.

A use is one conditional UPDATE (the stored counter must be below the new one, or both zero), so of two
responses carrying one counter value at most one is recorded; the row count says which.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from idp.sessions.passkeys import Passkey
from idp.store.db import single_statements
from idp.store.models import WebAuthnCredentialRow

_FIELDS = [f.name for f in fields(Passkey)]
_T = WebAuthnCredentialRow.__table__
_COLUMNS = [_T.c[name] for name in _FIELDS]


def _to_passkey(row: Any) -> Passkey:
    values = dict(zip(_FIELDS, row, strict=True))
    values["transports"] = tuple(values["transports"] or ())
    values["credential_id"] = bytes(values["credential_id"])
    values["public_key"] = bytes(values["public_key"])
    return Passkey(**values)


def _ok_id(value: str) -> bool:
    return 0 < len(value) <= 64 and "\x00" not in value


class SqlPasskeyStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._statement = single_statements(sessions.kw["bind"])

    def add(self, passkey: Passkey) -> bool:
        values = {name: getattr(passkey, name) for name in _FIELDS} | {"transports": list(passkey.transports)}
        try:
            with self._statement() as conn:
                conn.execute(insert(_T).values(**values))
        except IntegrityError:  # the credential id is registered already
            return False
        return True

    def _one(self, where: Any) -> Passkey | None:
        with self._statement() as conn:
            row = conn.execute(select(*_COLUMNS).where(where)).first()
        return _to_passkey(row) if row else None

    def get(self, passkey_id: str) -> Passkey | None:
        return self._one(_T.c.id == passkey_id) if _ok_id(passkey_id) else None

    def by_credential_id(self, credential_id: bytes) -> Passkey | None:
        return self._one(_T.c.credential_id == credential_id) if 0 < len(credential_id) <= 1023 else None

    def list_for_user(self, user_id: str) -> list[Passkey]:
        if not _ok_id(user_id):
            return []
        with self._statement() as conn:
            rows = conn.execute(select(*_COLUMNS).where(_T.c.user_id == user_id).order_by(_T.c.created_at)).all()
        return [_to_passkey(r) for r in rows]

    def record_use(self, passkey_id: str, sign_count: int, backed_up: bool, at: float) -> bool:
        # an authenticator without a counter sends 0 every time: then 0 stays 0
        moved = _T.c.sign_count == 0 if sign_count == 0 else _T.c.sign_count < sign_count
        statement = (
            update(_T)
            .where(_T.c.id == passkey_id, moved)  # WebAuthn L3 §7.2 step 21
            .values(sign_count=sign_count, backed_up=backed_up, last_used_at=at)
        )
        with self._statement() as conn:
            return conn.execute(statement).rowcount > 0

    def rename(self, user_id: str, passkey_id: str, name: str) -> bool:
        if not _ok_id(passkey_id):
            return False
        with self._statement() as conn:
            result = conn.execute(update(_T).where(_T.c.id == passkey_id, _T.c.user_id == user_id).values(name=name))
            return result.rowcount > 0

    def delete(self, user_id: str, passkey_ids: list[str] | None = None) -> list[Passkey]:
        where = [_T.c.user_id == user_id]
        if passkey_ids is not None:
            ids = [i for i in passkey_ids if _ok_id(i)]
            if not ids:
                return []
            where.append(_T.c.id.in_(ids))
        with self._statement() as conn:
            rows = conn.execute(delete(_T).where(*where).returning(*_COLUMNS)).all()
        return [_to_passkey(r) for r in rows]
