"""Audit events: who did what, to whom, when, and why. Never secrets."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from idp.clock import Clock
from idp.store.db import single_statements
from idp.store.models import AuditEventRow

log = logging.getLogger("idp.audit")
# Called with (action, detail) after each event is recorded (metrics); must not raise.
AuditListener = Callable[[str, dict[str, Any]], None]
_INSERT = insert(AuditEventRow.__table__)


@dataclass
class AuditEvent:
    id: int
    at: float
    actor: str
    action: str
    subject: str | None
    client_id: str | None
    detail: dict[str, Any]
    ip: str | None


class SqlAuditLog:
    def __init__(self, sessions: sessionmaker[Session], clock: Clock) -> None:
        self._sessions = sessions
        self._statement = single_statements(sessions.kw["bind"])
        self._clock = clock
        self.listeners: list[AuditListener] = []

    def record(
        self,
        action: str,
        *,
        actor: str = "system",
        subject: str | None = None,
        client_id: str | None = None,
        ip: str | None = None,
        session: Session | None = None,
        **detail: Any,
    ) -> None:
        """Write one event; pass ``session`` to make it part of the caller's transaction."""
        event = {"action": action, "actor": actor, "subject": subject, "client_id": client_id, "ip": ip}
        if session is not None:
            self._notify(self._insert(session, [event | {"detail": detail}]))
        else:  # an event of its own: one autocommit INSERT (PostgreSQL), not BEGIN, INSERT, COMMIT
            rows = self._rows([event | {"detail": detail}])
            with self._statement() as conn:
                conn.execute(_INSERT, rows)
            self._notify(rows)

    def record_many(self, session: Session, events: Sequence[Mapping[str, Any]]) -> None:
        """Write several events in the caller's transaction with one statement.

        Each event: ``action``, ``actor``, and optionally ``subject``, ``client_id``, ``ip``, ``detail``."""
        if events:
            self._notify(self._insert(session, events))

    def _insert(self, session: Session, events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """A Core INSERT on the session's connection: no ORM objects, no flush."""
        rows = self._rows(events)
        session.connection().execute(_INSERT, rows)
        return rows

    def _rows(self, events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        at = self._clock.now()
        return [
            {
                "at": at,
                "actor": e.get("actor", "system"),
                "action": e["action"],
                "subject": e.get("subject"),
                "client_id": e.get("client_id"),
                "detail": e.get("detail") or {},
                "ip": e.get("ip"),
            }
            for e in events
        ]

    def written(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Tell the listeners of events a statement of another repository wrote (``action`` and ``detail``)."""
        self._notify([{"action": e["action"], "detail": e.get("detail") or {}} for e in events])

    def _notify(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            for listener in self.listeners:
                try:
                    listener(row["action"], row["detail"])
                except Exception:
                    log.exception("audit listener failed")

    def query(
        self,
        *,
        subject: str | None = None,
        action: str | None = None,
        since: float | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        """Newest first; ``before`` (an event id) pages backwards."""
        q = select(AuditEventRow).order_by(AuditEventRow.id.desc()).limit(limit)
        if before is not None:
            q = q.where(AuditEventRow.id < before)
        if subject:
            q = q.where(AuditEventRow.subject == subject)
        if action:
            q = q.where(AuditEventRow.action == action)
        if since is not None:
            q = q.where(AuditEventRow.at >= since)
        with self._sessions() as s:
            return [
                AuditEvent(r.id, r.at, r.actor, r.action, r.subject, r.client_id, r.detail, r.ip) for r in s.scalars(q)
            ]
