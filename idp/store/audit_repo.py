"""Audit events: who did what, to whom, when, and why. Never secrets."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from idp.clock import Clock
from idp.store.models import AuditEventRow

log = logging.getLogger("idp.audit")
# Called with (action, detail) after each event is recorded (metrics); must not raise.
AuditListener = Callable[[str, dict[str, Any]], None]


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
        row = AuditEventRow(
            at=self._clock.now(),
            actor=actor,
            action=action,
            subject=subject,
            client_id=client_id,
            detail=detail,
            ip=ip,
        )
        if session is not None:
            session.add(row)
        else:
            with self._sessions.begin() as s:
                s.add(row)
        for listener in self.listeners:
            try:
                listener(action, detail)
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
