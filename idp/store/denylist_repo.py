"""SQL implementation of :class:`idp.denylist.service.DenyStore`.

The version is the row ``id``. Writers serialise on the ``meta`` row
``deny_list_version`` (its row lock on PostgreSQL; SQLite transactions begin
IMMEDIATE) and take the ids after it themselves, so versions commit in order: a
reader that saw version N has seen every row up to N. (A database sequence would not
give that: ids are handed out before commit, and purging the newest row would let
SQLite reuse its id.) An early removal is a row of its own (kind ``removal``, value =
the removed id), so it gets a version and travels through the same feed.

Adding entries is the hot path (every revoked grant deny-lists its live access
tokens): one transaction of three Core statements whatever the batch size — claim
the versions (``UPDATE meta ... RETURNING``, which also takes the lock), insert the
entries, insert their audit events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Integer, Text, bindparam, cast, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from idp.denylist.entries import DenyChange, DenyEntry, NewEntry
from idp.store.audit_repo import SqlAuditLog
from idp.store.db import single_statements
from idp.store.models import DenyEntryRow, MetaRow

VERSION_KEY = "deny_list_version"
REMOVAL = "removal"

_META = MetaRow.__table__
# Claims ``n`` versions: the row lock serialises writers until commit (PostgreSQL re-reads the row after
# waiting for it, so two writers never claim the same numbers), and RETURNING hands back the last one.
_CLAIM = (
    update(_META)
    .where(_META.c.key == VERSION_KEY)
    .values(value=cast(cast(_META.c.value, Integer) + bindparam("n", type_=Integer), Text))
    .returning(_META.c.value)
)
_INSERT = insert(DenyEntryRow.__table__)
# Reads. Every other worker runs these after each change it hears of, so they are prebuilt Core statements on
# a connection without BEGIN/ROLLBACK (PostgreSQL): the version first, then rows up to it, which committed with it.
_DENY = DenyEntryRow.__table__
_VERSION = select(_META.c.value).where(_META.c.key == VERSION_KEY)
_CHANGES = (
    select(_DENY)
    .where(
        _DENY.c.id > bindparam("b_after"), _DENY.c.id <= bindparam("b_upto"), _DENY.c.expires_at > bindparam("b_now")
    )
    .order_by(_DENY.c.id)
    .limit(bindparam("b_limit"))
)
# A gap (this process holds ``b_after``): one range scan of the primary key, no version read. Versions commit
# in order, so the rows a statement sees are a prefix: every version up to the highest it returns committed.
_BETWEEN = (
    select(_DENY)
    .where(
        _DENY.c.id > bindparam("b_after"), _DENY.c.id <= bindparam("b_upto"), _DENY.c.expires_at > bindparam("b_now")
    )
    .order_by(_DENY.c.id)
)
_LIVE = (
    select(_DENY)
    .where(
        _DENY.c.id <= bindparam("b_upto"),
        _DENY.c.kind != REMOVAL,
        _DENY.c.removed_at.is_(None),
        _DENY.c.expires_at > bindparam("b_now"),
    )
    .order_by(_DENY.c.id)
)


def _entry(row: Any) -> DenyEntry:
    """From an ORM row or a Core row of ``deny_list`` (same attribute names)."""
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


def _row(e: DenyEntry) -> dict[str, object]:
    return {
        "id": e.id,
        "kind": e.kind,
        "value": e.value,
        "not_before": e.not_before,
        "expires_at": e.expires_at,
        "reason": e.reason,
        "actor": e.actor,
        "created_at": e.created_at,
        "removed_at": None,
    }


def _added_event(e: DenyEntry) -> dict[str, object]:
    """``deny.added``: who denied what, why, until when (one event per entry, as operators query them)."""
    return {
        "action": "deny.added",
        "actor": e.actor,
        "subject": e.value if e.kind == "subject" else None,
        "client_id": e.value if e.kind == "client" else None,
        "detail": {
            "entry_id": e.id,
            "kind": e.kind,
            "value": e.value,
            "reason": e.reason,
            "not_before": e.not_before,
            "expires_at": e.expires_at,
        },
    }


def _change(row: Any) -> DenyChange:
    if row.kind == REMOVAL:
        return DenyChange(row.id, removed=int(row.value))
    return DenyChange(row.id, entry=_entry(row))


class SqlDenyStore:
    def __init__(self, sessions: sessionmaker[Session], audit: SqlAuditLog) -> None:
        self._sessions = sessions
        self._audit = audit
        self._have_row = False
        self._reads = single_statements(sessions.kw["bind"])

    def ensure_version_row(self) -> None:
        """Create the version row once; concurrent first writers race here, and the loser moves on.

        Called before a writing transaction opens (SQLite has one writer: not from inside another)."""
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
    def _read_version(conn: Connection) -> int:
        value = conn.execute(_VERSION).scalar()
        return int(value) if value is not None else 0

    def version(self) -> int:
        with self._reads() as conn:
            return self._read_version(conn)

    def add_many(self, entries: Sequence[NewEntry], *, reason: str, actor: str, now: float) -> list[DenyEntry]:
        if not entries:
            return []
        self.ensure_version_row()
        with self._sessions.begin() as s:
            return self.add_many_in(s, entries, reason=reason, actor=actor, now=now)

    def add_many_in(
        self, s: Session, entries: Sequence[NewEntry], *, reason: str, actor: str, now: float
    ) -> list[DenyEntry]:
        """:meth:`add_many` in the caller's transaction (after :meth:`ensure_version_row`). Call it last: the
        version row's lock serialises every deny-list writer until that transaction commits."""
        if not entries:
            return []
        conn = s.connection()
        last = conn.execute(_CLAIM, {"n": len(entries)}).scalar()
        if last is None:
            raise LookupError("deny-list version row missing")
        first = int(last) - len(entries) + 1
        added = [
            DenyEntry(
                id=first + i,
                kind=e.kind,
                value=e.value,
                expires_at=e.expires_at,
                not_before=e.not_before,
                reason=reason,
                actor=actor,
                created_at=now,
            )
            for i, e in enumerate(entries)
        ]
        conn.execute(_INSERT, [_row(e) for e in added])
        self._audit.record_many(s, [_added_event(e) for e in added])
        return added

    def remove(self, entry_id: int, *, actor: str, reason: str, now: float) -> DenyChange | None:
        self.ensure_version_row()
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
        with self._reads() as conn:
            version = self._read_version(conn)
            rows = conn.execute(_LIVE, {"b_upto": version, "b_now": now}).all()
        return version, [_entry(r) for r in rows]

    def changes_since(self, version: int, now: float, limit: int) -> tuple[int, list[DenyChange]]:
        """(current version, changes after ``version`` up to it whose entries can still match)."""
        with self._reads() as conn:
            current = self._read_version(conn)
            if current <= version:
                return current, []
            params = {"b_after": version, "b_upto": current, "b_now": now, "b_limit": limit}
            rows = conn.execute(_CHANGES, params).all()
        if len(rows) == limit:
            current = rows[-1].id
        return current, [_change(r) for r in rows]

    def changes_between(self, after: int, upto: int, now: float) -> list[DenyChange]:
        """Committed changes ``after`` < version <= ``upto`` whose entries can still match, in version order;
        one statement. Versions commit in order: every version up to the highest returned has committed (those
        missing expired or were purged), whether or not ``upto`` has yet."""
        if upto <= after:
            return []
        with self._reads() as conn:
            rows = conn.execute(_BETWEEN, {"b_after": after, "b_upto": upto, "b_now": now}).all()
        return [_change(r) for r in rows]

    def purge(self, now: float) -> int:
        with self._sessions.begin() as s:
            result = s.connection().execute(delete(DenyEntryRow).where(DenyEntryRow.expires_at <= now))
            return int(result.rowcount or 0)
