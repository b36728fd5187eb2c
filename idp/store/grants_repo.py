"""SQL implementation of :class:`idp.tokens.refresh.GrantStore` (tables ``grants`` and ``refresh_tokens``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from idp.store.audit_repo import SqlAuditLog
from idp.store.models import GrantRow, RefreshTokenRow
from idp.tokens.refresh import GrantRecord, RevokedGrant, TokenRecord

_GRANT = [c.key for c in GrantRow.__table__.columns]
_TOKEN = [c.key for c in RefreshTokenRow.__table__.columns]
PURGE_AFTER = 86_400.0  # dead grants are kept a day for the audit trail and late reuse reports


def _grant(row: GrantRow) -> GrantRecord:
    return GrantRecord(**{k: getattr(row, k) for k in _GRANT})


def _token(row: RefreshTokenRow) -> TokenRecord:
    return TokenRecord(**{k: getattr(row, k) for k in _TOKEN})


class SqlGrantTx:
    def __init__(self, s: Session, audit: SqlAuditLog) -> None:
        self._s = s
        self._audit = audit

    def token_by_digest(self, digest: bytes, *, lock: bool = False) -> tuple[TokenRecord, GrantRecord] | None:
        q = (
            select(RefreshTokenRow, GrantRow)
            .join(GrantRow, GrantRow.id == RefreshTokenRow.grant_id)
            .where(RefreshTokenRow.digest == digest)
        )
        if lock:
            # PostgreSQL: serialise rotation against revocation of the same family (SQLite: BEGIN IMMEDIATE does).
            q = q.with_for_update()
        found = self._s.execute(q).first()
        return (_token(found[0]), _grant(found[1])) if found else None

    def insert_grant(self, grant: GrantRecord) -> None:
        self._s.add(GrantRow(**{k: getattr(grant, k) for k in _GRANT}))
        self._s.flush()

    def insert_token(self, token: TokenRecord) -> None:
        self._s.add(RefreshTokenRow(**{k: getattr(token, k) for k in _TOKEN}))
        self._s.flush()

    def mark_rotated(self, token_id: str, *, now: float, successor_id: str, successor_enc: bytes | None) -> bool:
        result = self._s.execute(
            update(RefreshTokenRow)
            .where(RefreshTokenRow.id == token_id, RefreshTokenRow.rotated_at.is_(None))
            .values(rotated_at=now, successor_id=successor_id, successor_enc=successor_enc)
        )
        return result.rowcount == 1  # type: ignore[attr-defined]

    def use_grace(self, token_id: str, max_uses: int) -> bool:
        result = self._s.execute(
            update(RefreshTokenRow)
            .where(RefreshTokenRow.id == token_id, RefreshTokenRow.grace_uses < max_uses)
            .values(grace_uses=RefreshTokenRow.grace_uses + 1)
        )
        return result.rowcount == 1  # type: ignore[attr-defined]

    def forget_successor_of(self, token_id: str) -> None:
        self._s.execute(
            update(RefreshTokenRow)
            .where(RefreshTokenRow.successor_id == token_id, RefreshTokenRow.successor_enc.is_not(None))
            .values(successor_enc=None)
        )

    def revoke(
        self,
        *,
        now: float,
        reason: str,
        grant_id: str | None = None,
        code_digest: bytes | None = None,
        sid: str | None = None,
        user_id: str | None = None,
        client_id: str | None = None,
        keep_offline: bool = False,
    ) -> list[RevokedGrant]:
        filters: list[Any] = [GrantRow.revoked_at.is_(None)]
        for column, value in (
            (GrantRow.id, grant_id),
            (GrantRow.code_digest, code_digest),
            (GrantRow.sid, sid),
            (GrantRow.user_id, user_id),
            (GrantRow.client_id, client_id),
        ):
            if value is not None:
                filters.append(column == value)
        if len(filters) == 1:
            raise ValueError("revoke needs at least one filter")
        rows = [_grant(r) for r in self._s.scalars(select(GrantRow).where(*filters))]
        if keep_offline:
            rows = [g for g in rows if not g.offline]
        if not rows:
            return []
        ids = [g.id for g in rows]
        self._s.execute(
            update(GrantRow)
            .where(GrantRow.id.in_(ids), GrantRow.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason[:64])
        )
        out = {g.id: RevokedGrant(g.id, g.client_id, g.user_id) for g in rows}
        live = self._s.execute(
            select(RefreshTokenRow.grant_id, RefreshTokenRow.at_jti, RefreshTokenRow.at_exp).where(
                RefreshTokenRow.grant_id.in_(ids),
                RefreshTokenRow.at_jti.is_not(None),
                RefreshTokenRow.at_exp > now,
            )
        )
        for gid, jti, exp in live:
            out[gid].live_jtis.append((jti, exp))
        return list(out.values())

    def audit(self, action: str, *, actor: str, subject: str | None, client_id: str | None, **detail: Any) -> None:
        self._audit.record(action, actor=actor, subject=subject, client_id=client_id, session=self._s, **detail)


class SqlGrantStore:
    def __init__(self, sessions: sessionmaker[Session], audit: SqlAuditLog) -> None:
        self._sessions = sessions
        self._audit = audit

    @contextmanager
    def transaction(self) -> Iterator[SqlGrantTx]:
        with self._sessions.begin() as s:
            yield SqlGrantTx(s, self._audit)

    def grants_for_user(self, user_id: str, now: float) -> list[GrantRecord]:
        live_token = (
            select(RefreshTokenRow.grant_id)
            .where(RefreshTokenRow.rotated_at.is_(None), RefreshTokenRow.idle_expires_at > now)
            .where(or_(RefreshTokenRow.digest.is_not(None), RefreshTokenRow.at_exp > now))
        )
        q = (
            select(GrantRow)
            .where(
                GrantRow.user_id == user_id,
                GrantRow.revoked_at.is_(None),
                GrantRow.absolute_expires_at > now,
                GrantRow.id.in_(live_token),
            )
            .order_by(GrantRow.created_at.desc())
        )
        with self._sessions() as s:
            return [_grant(r) for r in s.scalars(q)]

    def purge(self, *, now: float, grace_seconds: float) -> int:
        with self._sessions.begin() as s:
            s.execute(
                update(RefreshTokenRow)
                .where(RefreshTokenRow.successor_enc.is_not(None), RefreshTokenRow.rotated_at < now - grace_seconds)
                .values(successor_enc=None)
            )
            dead = or_(
                GrantRow.absolute_expires_at < now - PURGE_AFTER,
                and_(GrantRow.revoked_at.is_not(None), GrantRow.revoked_at < now - PURGE_AFTER),
            )
            ids = list(s.scalars(select(GrantRow.id).where(dead)))
            if ids:
                s.execute(delete(RefreshTokenRow).where(RefreshTokenRow.grant_id.in_(ids)))
                s.execute(delete(GrantRow).where(GrantRow.id.in_(ids)))
            return len(ids)
