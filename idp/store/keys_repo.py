"""SQL implementation of :class:`idp.keys.keyring.KeyStore`."""

from __future__ import annotations

from dataclasses import fields
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from idp.keys.keyring import KeyChange, StoredKey
from idp.store.models import MetaRow, SigningKeyRow

_R = TypeVar("_R")
_VERSION_KEY = "keyring_version"
_FIELDS = [f.name for f in fields(StoredKey)]


def _to_stored(row: SigningKeyRow) -> StoredKey:
    return StoredKey(**{name: getattr(row, name) for name in _FIELDS})


class SqlKeyStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def version(self) -> int:
        with self._sessions() as s:
            value = s.get(MetaRow, _VERSION_KEY)
            return int(value.value) if value else 0

    def load(self) -> tuple[int, list[StoredKey]]:
        with self._sessions() as s:
            meta = s.get(MetaRow, _VERSION_KEY)
            rows = s.scalars(select(SigningKeyRow)).all()
            return (int(meta.value) if meta else 0), [_to_stored(r) for r in rows]

    def mutate(self, change: KeyChange[_R]) -> _R:
        try:
            return self._mutate(change)
        except IntegrityError:
            # Two instances created the version row at once on an empty database; the row exists now.
            return self._mutate(change)

    def _mutate(self, change: KeyChange[_R]) -> _R:
        with self._sessions.begin() as s:
            # The version row is the keyring lock: two instances rotating at once serialise here
            # (SELECT ... FOR UPDATE on PostgreSQL; SQLite transactions begin IMMEDIATE).
            meta = s.scalars(select(MetaRow).where(MetaRow.key == _VERSION_KEY).with_for_update()).first()
            if meta is None:
                meta = MetaRow(key=_VERSION_KEY, value="0")
                s.add(meta)
                s.flush()
            rows = [_to_stored(r) for r in s.scalars(select(SigningKeyRow)).all()]
            result, dirty = change(rows)
            for stored in dirty:
                existing = s.get(SigningKeyRow, stored.kid)
                if existing is None:
                    s.add(SigningKeyRow(**{name: getattr(stored, name) for name in _FIELDS}))
                else:
                    for name in _FIELDS:
                        setattr(existing, name, getattr(stored, name))
            if dirty:
                meta.value = str(int(meta.value) + 1)
            return result
