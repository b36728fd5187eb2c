"""SQL implementation of :class:`idp.clients.registry.ClientStore`."""

from __future__ import annotations

from dataclasses import fields

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from idp.clients.model import Client
from idp.store.models import ClientRow

_FIELDS = [f.name for f in fields(Client)]


def _to_client(row: ClientRow) -> Client:
    return Client(**{name: getattr(row, name) for name in _FIELDS})


class SqlClientStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def get(self, client_id: str) -> Client | None:
        if "\x00" in client_id:  # no id holds NUL, and PostgreSQL refuses it in a query (DataError, a 500)
            return None
        with self._sessions() as s:
            row = s.get(ClientRow, client_id)
            return _to_client(row) if row else None

    def list(self) -> list[Client]:
        with self._sessions() as s:
            return [_to_client(r) for r in s.scalars(select(ClientRow).order_by(ClientRow.created_at))]

    def save(self, client: Client) -> None:
        with self._sessions.begin() as s:
            s.merge(ClientRow(**{name: getattr(client, name) for name in _FIELDS}))

    def delete(self, client_id: str) -> bool:
        if "\x00" in client_id:
            return False
        with self._sessions.begin() as s:
            return s.execute(delete(ClientRow).where(ClientRow.client_id == client_id)).rowcount > 0
