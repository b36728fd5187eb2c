"""SQL implementation of :class:`idp.tokens.denylist.DenyStore`.

The version is the row ``id``. Writers serialise on the ``meta`` row
``deny_list_version`` (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite transactions
begin IMMEDIATE) and take ``id = version + 1`` themselves, so versions commit in order:
a reader that saw version N has seen every row up to N. (A database sequence would not
give that: ids are handed out before commit, and purging the newest row would let
SQLite reuse its id.) An early removal is a row of its own (kind ``removal``, value =
the removed id), so it gets a version and travels through the same feed.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from idp.store.audit_repo import SqlAuditLog
from idp.store.models import DenyEntryRow, MetaRow
from idp.tokens.denyset import DenyChange, DenyEntry

VERSION_KEY = "deny_list_version"
REMOVAL = "removal"


def _entry(row: DenyEntryRow) -> DenyEntry:
    return DenyEntry(
        id=row.id,
        kind=row.kind,
        value=row.value,
        expires_at=row.expires_at,
        not_before=row.not_before,
        reason=row.reason,
        actor=row.actor,
        created_at=row.created_at,
    )


def _change(row: DenyEntryRow) -> DenyChange:
    if row.kind == REMOVAL:
        return DenyChange(row.id, removed=int(row.value))
    return DenyChange(row.id, entry=_entry(row))


class SqlDenyStore:
    def __init__(self, sessions: sessionmaker[Session], audit: SqlAuditLog) -> None:
        self._sessions = sessions
        self._audit = audit
        self._have_row = False

    def _ensure_version_row(self) -> None:
        """Create the version row once; concurrent first writers race here, and the loser moves on."""
        if self._have_row:
            return
        try:
            with self._sessions.begin() as s:
                if s.get(MetaRow, VERSION_KEY) is None:
                    s.add(MetaRow(key=VERSION_KEY, value="0"))
        except IntegrityError:
            pass
        self._have_row = True

    def _lock_version(self, s: Session) -> MetaRow:
        meta = s.scalars(select(MetaRow).where(MetaRow.key == VERSION_KEY).with_for_update()).first()
        if meta is None:
            raise LookupError("deny-list version row missing")
        return meta

    @staticmethod
    def _read_version(s: Session) -> int:
        meta = s.get(MetaRow, VERSION_KEY)
        return int(meta.value) if meta else 0

    def version(self) -> int:
        with self._sessions() as s:
            return self._read_version(s)

    def add(
        self,
        kind: str,
        value: str,
        *,
        not_before: float | None,
        expires_at: float,
        reason: str,
        actor: str,
        now: float,
    ) -> DenyEntry:
        self._ensure_version_row()
        with self._sessions.begin() as s:
            meta = self._lock_version(s)
            version = int(meta.value) + 1
            row = DenyEntryRow(
                id=version,
                kind=kind,
                value=value,
                not_before=not_before,
                expires_at=expires_at,
                reason=reason,
                actor=actor,
                created_at=now,
            )
            s.add(row)
            meta.value = str(version)
            self._audit.record(
                "deny.added",
                actor=actor,
                subject=value if kind == "subject" else None,
                client_id=value if kind == "client" else None,
                session=s,
                entry_id=version,
                kind=kind,
                value=value,
                reason=reason,
                not_before=not_before,
                expires_at=expires_at,
            )
            s.flush()
            return _entry(row)

    def remove(self, entry_id: int, *, actor: str, reason: str, now: float) -> DenyChange | None:
        self._ensure_version_row()
        with self._sessions.begin() as s:
            meta = self._lock_version(s)
            target = s.get(DenyEntryRow, entry_id)
            if target is None or target.kind == REMOVAL or target.removed_at is not None or target.expires_at <= now:
                return None
            version = int(meta.value) + 1
            target.removed_at = now
            s.add(
                DenyEntryRow(
                    id=version,
                    kind=REMOVAL,
                    value=str(entry_id),
                    expires_at=target.expires_at,  # purged together with its target
                    reason=reason,
                    actor=actor,
                    created_at=now,
                )
            )
            meta.value = str(version)
            self._audit.record(
                "deny.removed",
                actor=actor,
                session=s,
                entry_id=entry_id,
                kind=target.kind,
                value=target.value,
                reason=reason,
            )
            return DenyChange(version, removed=entry_id)

    def get(self, entry_id: int) -> DenyEntry | None:
        with self._sessions() as s:
            row = s.get(DenyEntryRow, entry_id)
            return None if row is None or row.kind == REMOVAL else _entry(row)

    def live(self, now: float) -> tuple[int, list[DenyEntry]]:
        with self._sessions() as s:
            version = self._read_version(s)
            rows = s.scalars(
                select(DenyEntryRow)
                .where(
                    DenyEntryRow.id <= version,
                    DenyEntryRow.kind != REMOVAL,
                    DenyEntryRow.removed_at.is_(None),
                    DenyEntryRow.expires_at > now,
                )
                .order_by(DenyEntryRow.id)
            ).all()
            return version, [_entry(r) for r in rows]

    def changes_since(self, version: int, now: float, limit: int) -> tuple[int, list[DenyChange]]:
        """(current version, changes after ``version`` up to it whose entries can still match)."""
        with self._sessions() as s:
            current = self._read_version(s)
            rows = s.scalars(
                select(DenyEntryRow)
                .where(DenyEntryRow.id > version, DenyEntryRow.id <= current, DenyEntryRow.expires_at > now)
                .order_by(DenyEntryRow.id)
                .limit(limit)
            ).all()
            if len(rows) == limit:
                current = rows[-1].id
            return current, [_change(r) for r in rows]

    def purge(self, now: float) -> int:
        with self._sessions.begin() as s:
            result = s.execute(delete(DenyEntryRow).where(DenyEntryRow.expires_at <= now))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]
