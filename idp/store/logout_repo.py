"""SQL back-channel logout outbox (table ``logout_deliveries``): written in the transaction that ends the
sessions (:meth:`SqlLogoutOutbox.enqueue`, an :data:`idp.store.sessions_repo.EndParticipant`), read by the
sender (:mod:`idp.logout.sender`).

A claim moves ``next_attempt_at`` forward by the lease and stamps ``claim`` with the sender's random token, in
one statement: on PostgreSQL over ``SELECT … FOR UPDATE SKIP LOCKED`` (two instances never take the same row;
neither waits for the other), on SQLite under its write lock (BEGIN IMMEDIATE). Every later write is
conditional on that token still holding the row, so a sender whose lease ran out cannot overwrite the work
of the one that took over. A crashed sender's rows become due again when its lease passes: at least once.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from idp.crypto import random_id
from idp.sessions.store import LoginSession
from idp.store.db import single_statements
from idp.store.models import ClientRow, LogoutDeliveryRow

STATES = ("pending", "delivered", "dead")
NOT_SENT = frozenset({"expired"})  # an idle or absolute timeout is no logout: the RP's session has its own
MAX_ERROR = 300

_T = LogoutDeliveryRow.__table__
_C = ClientRow.__table__
_FIELDS = (
    "id", "client_id", "sid", "sub", "reason", "state", "attempts", "next_attempt_at", "claim", "last_error",
    "last_status", "created_at", "delivered_at",
)  # fmt: skip
_COLUMNS = [_T.c[name] for name in _FIELDS]


@dataclass(frozen=True)
class Delivery:
    id: str
    client_id: str
    sid: str | None
    sub: str | None
    reason: str
    state: str
    attempts: int
    next_attempt_at: float
    claim: str | None
    last_error: str | None
    last_status: int | None
    created_at: float
    delivered_at: float | None

    def view(self) -> dict[str, Any]:
        """The operator's view (CLI, admin API): everything but the claim token."""
        return {name: getattr(self, name) for name in _FIELDS if name != "claim"}


def _to_delivery(row: Any) -> Delivery:
    return Delivery(**dict(zip(_FIELDS, row, strict=True)))


class SqlLogoutOutbox:
    def __init__(self, sessions: sessionmaker[Session], clock_now: Callable[[], float]) -> None:
        self._engine: Engine = sessions.kw["bind"]
        self._statement = single_statements(self._engine)
        self._now = clock_now
        self.waiters: list[Callable[[], None]] = []
        """The running senders of this process (:mod:`idp.logout.sender`), told by :meth:`notify`."""

    def notify(self) -> None:
        """Rows were committed: wake this process's senders (thread-safe; nothing when none runs)."""
        for wake in tuple(self.waiters):
            wake()

    # -- written with the end of the sessions --------------------------------------------------------------
    def enqueue(self, conn: Connection, ended: list[LoginSession], clients: dict[str, list[str]], reason: str) -> None:
        """One row per (ended session, client it signed into that still has a ``backchannel_logout_uri``)."""
        if reason in NOT_SENT or not clients:
            return
        wanted = {cid for s in ended for cid in clients.get(s.sid, ())}
        if not wanted:
            return
        registered = set(
            conn.execute(
                select(_C.c.client_id).where(
                    _C.c.client_id.in_(wanted), _C.c.backchannel_logout_uri.is_not(None), _C.c.disabled.is_(False)
                )
            ).scalars()
        )
        now = self._now()
        rows = [
            {"id": random_id(16), "client_id": cid, "sid": s.sid, "sub": s.user_id, "reason": reason[:64],
             "state": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now}
            for s in ended for cid in clients.get(s.sid, ()) if cid in registered
        ]  # fmt: skip
        if rows:
            conn.execute(insert(_T), rows)

    # -- the sender ----------------------------------------------------------------------------------------
    def claim(self, now: float, *, limit: int, lease: float, exclude: Iterable[str] = ()) -> tuple[str, list[Delivery]]:
        """Take up to ``limit`` due rows (not of the ``exclude``d clients) for ``lease`` seconds; returns the claim
        token and the rows, ``attempts`` already counting this one."""
        token = random_id(12)
        due = select(_T.c.id).where(_T.c.state == "pending", _T.c.next_attempt_at <= now)
        excluded = list(exclude)
        if excluded:
            due = due.where(_T.c.client_id.not_in(excluded))
        with self._statement() as conn:  # a plain read first: an idle poll takes no write lock (SQLite)
            if conn.execute(due.limit(1)).first() is None:
                return token, []
        due = due.order_by(_T.c.next_attempt_at).limit(limit).with_for_update(skip_locked=True)  # PostgreSQL
        with self._engine.begin() as conn:
            rows = conn.execute(
                update(_T)
                .where(_T.c.id.in_(due.scalar_subquery()), _T.c.state == "pending", _T.c.next_attempt_at <= now)
                .values(claim=token, next_attempt_at=now + lease, attempts=_T.c.attempts + 1)
                .returning(*_COLUMNS)
            ).all()
        return token, sorted((_to_delivery(r) for r in rows), key=lambda d: d.created_at)

    def delivered(self, delivery_id: str, token: str, now: float, status: int) -> bool:
        with self._statement() as conn:
            held = self._held(delivery_id, token)
            values = {"state": "delivered", "delivered_at": now, "last_status": status, "last_error": None}
            return conn.execute(held.values(**values)).rowcount > 0

    def failed(self, delivery_id: str, token: str, *, error: str, status: int | None, retry_at: float | None) -> bool:
        """Record a failed attempt: due again at ``retry_at``, or dead (None: past the retry horizon)."""
        values: dict[str, Any] = {"last_error": error[:MAX_ERROR], "last_status": status, "claim": None}
        values |= {"next_attempt_at": retry_at} if retry_at is not None else {"state": "dead"}
        with self._statement() as conn:
            return conn.execute(self._held(delivery_id, token).values(**values)).rowcount > 0

    def release(self, delivery_ids: Sequence[str], token: str, now: float) -> None:
        """Give claimed rows back unattempted (due at once, the attempt not counted)."""
        if not delivery_ids:
            return
        with self._statement() as conn:
            conn.execute(
                update(_T)
                .where(_T.c.id.in_(list(delivery_ids)), _T.c.claim == token, _T.c.state == "pending")
                .values(next_attempt_at=now, claim=None, attempts=_T.c.attempts - 1)
            )

    @staticmethod
    def _held(delivery_id: str, token: str) -> Any:
        return update(_T).where(_T.c.id == delivery_id, _T.c.claim == token, _T.c.state == "pending")

    # -- the operator --------------------------------------------------------------------------------------
    def get(self, delivery_id: str) -> Delivery | None:
        with self._statement() as conn:
            row = conn.execute(select(*_COLUMNS).where(_T.c.id == delivery_id)).first()
        return _to_delivery(row) if row else None

    def list(self, *, state: str | None = None, client_id: str | None = None, limit: int = 100) -> list[Delivery]:
        """Newest first."""
        q = select(*_COLUMNS)
        if state is not None:
            q = q.where(_T.c.state == state)
        if client_id is not None:
            q = q.where(_T.c.client_id == client_id)
        with self._statement() as conn:
            return [_to_delivery(r) for r in conn.execute(q.order_by(_T.c.created_at.desc()).limit(limit))]

    def retry(self, now: float, *, ids: Sequence[str] = (), client_id: str | None = None) -> builtins.list[str]:
        """Dead rows (these ``ids``, or every dead row [of ``client_id``]) back to pending, due now, with a
        fresh retry horizon (``created_at`` = now). Returns the ids revived."""
        q = update(_T).where(_T.c.state == "dead")
        if ids:
            q = q.where(_T.c.id.in_(list(ids)))
        if client_id is not None:
            q = q.where(_T.c.client_id == client_id)
        q = q.values(state="pending", next_attempt_at=now, claim=None, attempts=0, created_at=now)
        with self._engine.begin() as conn:
            return list(conn.execute(q.returning(_T.c.id)).scalars())

    def purge(self, before: float) -> int:
        """Delivered rows older than ``before`` go (dead ones stay for the operator)."""
        with self._statement() as conn:
            return conn.execute(delete(_T).where(_T.c.state == "delivered", _T.c.delivered_at < before)).rowcount
