"""SQL implementation of :class:`idp.sessions.consents.ConsentStore`, plus the grant summary the account page shows."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from idp.sessions.account import GrantSummary
from idp.sessions.consents import Consent
from idp.store.models import ConsentRow, GrantRow


def _to_consent(row: ConsentRow) -> Consent:
    return Consent(row.user_id, row.client_id, tuple(row.scope.split()), row.created_at, row.updated_at)


class SqlConsentStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def get(self, user_id: str, client_id: str) -> Consent | None:
        with self._sessions() as s:
            row = s.scalars(
                select(ConsentRow).where(ConsentRow.user_id == user_id, ConsentRow.client_id == client_id)
            ).first()
            return _to_consent(row) if row else None

    def put(self, consent: Consent) -> None:
        for attempt in range(2):  # a concurrent first grant may win the unique (user, client) row
            try:
                with self._sessions.begin() as s:
                    row = s.scalars(
                        select(ConsentRow).where(
                            ConsentRow.user_id == consent.user_id, ConsentRow.client_id == consent.client_id
                        )
                    ).first()
                    if row is None:
                        row = ConsentRow(user_id=consent.user_id, client_id=consent.client_id)
                        s.add(row)
                    row.scope = " ".join(consent.scopes)
                    row.created_at = consent.created_at
                    row.updated_at = consent.updated_at
                return
            except IntegrityError:
                if attempt:
                    raise

    def delete(self, user_id: str, client_id: str) -> bool:
        with self._sessions.begin() as s:
            result = s.connection().execute(  # the Core result: its rowcount is typed
                delete(ConsentRow).where(ConsentRow.user_id == user_id, ConsentRow.client_id == client_id)
            )
            return result.rowcount > 0

    def list_for_user(self, user_id: str) -> list[Consent]:
        with self._sessions() as s:
            return [_to_consent(r) for r in s.scalars(select(ConsentRow).where(ConsentRow.user_id == user_id))]


class SqlGrantSummary:
    """Read-only view of a user's live grants (table ``grants``, owned by idp.tokens) for the account page."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def for_user(self, user_id: str, now: float) -> list[GrantSummary]:
        q = (
            select(GrantRow.client_id, func.count(), func.max(GrantRow.created_at))
            .where(GrantRow.user_id == user_id, GrantRow.revoked_at.is_(None), GrantRow.absolute_expires_at > now)
            .group_by(GrantRow.client_id)
        )
        with self._sessions() as s:
            return [GrantSummary(cid, int(n), float(last)) for cid, n, last in s.execute(q)]
