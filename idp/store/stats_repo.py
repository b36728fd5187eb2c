"""Counts of live shared state for the metrics endpoint (read at scrape time)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from idp.store.models import DenyEntryRow, GrantRow, LoginSessionRow, LogoutDeliveryRow


class SqlStateCounts:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def __call__(self, now: float) -> dict[str, dict[str, int]]:
        with self._sessions() as s:
            deny = s.execute(
                select(DenyEntryRow.kind, func.count())
                .where(DenyEntryRow.removed_at.is_(None), DenyEntryRow.expires_at > now)
                .group_by(DenyEntryRow.kind)
            ).all()
            sessions = s.scalar(
                select(func.count())
                .select_from(LoginSessionRow)
                .where(LoginSessionRow.idle_expires_at > now, LoginSessionRow.absolute_expires_at > now)
            )
            grants = s.scalar(
                select(func.count())
                .select_from(GrantRow)
                .where(GrantRow.revoked_at.is_(None), GrantRow.absolute_expires_at > now)
            )
            outbox = s.execute(select(LogoutDeliveryRow.state, func.count()).group_by(LogoutDeliveryRow.state)).all()
            due = s.scalar(
                select(func.count())
                .select_from(LogoutDeliveryRow)
                .where(LogoutDeliveryRow.state == "pending", LogoutDeliveryRow.next_attempt_at <= now)
            )
        return {
            "logout_outbox": {"pending": 0, "dead": 0}
            | {st: int(n) for st, n in outbox if st != "delivered"}
            | {"due": int(due or 0)},
            "deny": {kind: int(n) for kind, n in deny},
            "sessions": {"active": int(sessions or 0)},
            "grants": {"active": int(grants or 0)},
        }
