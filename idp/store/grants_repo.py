"""SQL implementation of :class:`idp.tokens.refresh.GrantStore` (tables ``grants`` and ``refresh_tokens``).

The hot paths (opening a family at a code exchange, reading a refresh token, rotating it) are
Core statements built once, on an autocommit connection: one round trip each on PostgreSQL,
where the ORM and a transaction around a single statement cost several. The rarer paths
(grace repeats, reuse detection, revocation) run in a transaction that locks the rows
(:class:`SqlGrantTx`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, LargeBinary, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from idp.denylist.entries import DenyEntry, NewEntry
from idp.store.audit_repo import SqlAuditLog
from idp.store.db import single_statements
from idp.store.denylist_repo import VERSION_KEY as DENY_VERSION_KEY
from idp.store.denylist_repo import SqlDenyStore, _added_event
from idp.store.direct import Direct
from idp.store.models import GrantRow, RefreshTokenRow
from idp.tokens.refresh import OFFLINE, DenyTerms, GrantRecord, RevokedGrant, TokenRecord

_GRANT = [c.key for c in GrantRow.__table__.columns]
_TOKEN = [c.key for c in RefreshTokenRow.__table__.columns]
PURGE_AFTER = 86_400.0  # dead grants are kept a day for the audit trail and late reuse reports

_T, _G = RefreshTokenRow.__table__, GrantRow.__table__
_FIND = (
    select(*_T.c, *_G.c)
    .select_from(_T.join(_G, _G.c.id == _T.c.grant_id))
    .where(_T.c.digest == bindparam("digest", type_=LargeBinary))
)
_FIND_LOCKED = _FIND.with_for_update(of=_T)
_LOCK_GRANT = (
    select(_G.c.id)
    .where(_G.c.id == select(_T.c.grant_id).where(_T.c.digest == bindparam("digest")).scalar_subquery())
    .with_for_update()
)
_INSERT_GRANT = insert(_G)
_INSERT_TOKEN = insert(_T)
# Rotation. The grant row is share-locked so a concurrent revocation (UPDATE grants ... then SELECT the
# family's live access tokens) either waits for this rotation and then sees its new access token, or
# commits first and makes this statement rotate nothing. A data-modifying CTE is one atomic statement.
_ROTATE_PG = """
    WITH live AS (
        SELECT id FROM grants WHERE id = %(grant_id)s AND revoked_at IS NULL FOR SHARE
    ), old AS (
        UPDATE refresh_tokens SET rotated_at = %(now)s, successor_id = %(id)s, successor_enc = %(sealed)s
        WHERE id = %(old_id)s AND rotated_at IS NULL AND grant_id IN (SELECT id FROM live)
        RETURNING id
    ), forget AS (
        UPDATE refresh_tokens SET successor_enc = NULL
        WHERE grant_id = %(grant_id)s AND successor_id = %(old_id)s AND successor_enc IS NOT NULL
          AND EXISTS (SELECT 1 FROM old)
    )
    INSERT INTO refresh_tokens
        (id, grant_id, digest, scope, created_at, idle_expires_at, at_jti, at_exp, grace_uses)
    SELECT %(id)s, %(grant_id)s, %(digest)s, %(scope)s, %(created_at)s, %(idle_expires_at)s, %(at_jti)s,
           %(at_exp)s, 0 FROM old
"""
_OPEN_PG = """
    WITH g AS (
        INSERT INTO grants (id, client_id, user_id, sid, scope, audience, auth_time, acr, amr, code_digest,
                            created_at, absolute_expires_at, jkt)
        VALUES (%(grant_id)s, %(client_id)s, %(user_id)s, %(sid)s, %(grant_scope)s, %(audience)s, %(auth_time)s,
                %(acr)s, %(amr)s, %(code_digest)s, %(grant_created_at)s, %(absolute_expires_at)s, %(jkt)s)
        RETURNING id
    )
    INSERT INTO refresh_tokens
        (id, grant_id, digest, scope, created_at, idle_expires_at, at_jti, at_exp, grace_uses)
    SELECT %(id)s, g.id, %(digest)s, %(scope)s, %(created_at)s, %(idle_expires_at)s, %(at_jti)s, %(at_exp)s, 0
    FROM g
"""
# Revocation of a refresh token's family (RFC 7009 §2.1), ONE statement and so one round trip and one commit:
# the family revoked (the token's lookup and its client check ride in the UPDATE), its live access tokens
# deny-listed at consecutive versions (the version row's lock is held to the commit, as by every deny-list
# writer), and an audit event for the grant and for each entry. The family's rows are locked FOR UPDATE: a
# rotation that held the grant until it committed shows in the latest version of the row it rotated (its
# successor_id), while the row it inserted is outside this statement's snapshot; the last branch reports such
# a successor so the caller deny-lists its access token too (SqlGrantStore.revoke_token_family).
_REVOKE_FAMILY_PG = """
    WITH revoked AS (
        UPDATE grants SET revoked_at = %(now)s, revoked_reason = %(marked_reason)s
        WHERE revoked_at IS NULL AND client_id = %(client_id)s
          AND id IN (SELECT grant_id FROM refresh_tokens WHERE digest = %(digest)s)
        RETURNING id, client_id, user_id
    ), family AS (
        SELECT id, grant_id, at_jti, at_exp, successor_id FROM refresh_tokens
        WHERE grant_id IN (SELECT id FROM revoked)
        FOR UPDATE
    ), live AS (
        SELECT at_jti, at_exp, row_number() OVER (ORDER BY id) AS n FROM family
        WHERE at_jti IS NOT NULL AND at_exp > %(now)s
    ), claim AS (
        UPDATE meta SET value = CAST(CAST(value AS INTEGER) + (SELECT count(*) FROM live) AS TEXT)
        WHERE key = %(version_key)s AND EXISTS (SELECT 1 FROM live)
        RETURNING CAST(value AS INTEGER) AS last
    ), added AS (
        INSERT INTO deny_list (id, kind, value, not_before, expires_at, reason, actor, created_at, removed_at)
        SELECT (SELECT last FROM claim) - (SELECT count(*) FROM live) + live.n, 'jti', live.at_jti, NULL,
               live.at_exp + %(leeway)s, %(deny_reason)s, %(deny_actor)s, %(now)s, NULL
        FROM live  -- no version row: a NULL id fails the whole statement, never a family revoked unlisted
        RETURNING id, value, expires_at
    ), audited AS (
        INSERT INTO audit_events (at, actor, action, subject, client_id, detail, ip)
        SELECT %(now)s, %(actor)s, 'grant_revoked', user_id, client_id,
               json_build_object('grant_id', id, 'reason', CAST(%(reason)s AS TEXT)), NULL
        FROM revoked
        UNION ALL
        SELECT %(now)s, %(deny_actor)s, 'deny.added', NULL, NULL,
               json_build_object('entry_id', id, 'kind', 'jti', 'value', value, 'reason', CAST(%(deny_reason)s AS TEXT),
                                 'not_before', NULL, 'expires_at', expires_at), NULL
        FROM added
    )
    SELECT 'grant', id, client_id, user_id, CAST(NULL AS DOUBLE PRECISION) FROM revoked
    UNION ALL SELECT 'entry', CAST(id AS TEXT), value, NULL, expires_at FROM added
    UNION ALL SELECT 'successor', successor_id, grant_id, NULL, NULL FROM family
        WHERE successor_id IS NOT NULL AND successor_id NOT IN (SELECT id FROM family)
"""
_LIVE_OF = (
    "SELECT id, at_jti, at_exp FROM refresh_tokens WHERE id = ANY(%(ids)s) AND at_jti IS NOT NULL AND at_exp > %(now)s"
)
_MARK_ROTATED = (
    update(_T)
    .where(
        _T.c.id == bindparam("b_old"),
        _T.c.rotated_at.is_(None),
        _T.c.grant_id.in_(select(_G.c.id).where(_G.c.id == bindparam("b_grant"), _G.c.revoked_at.is_(None))),
    )
    .values(rotated_at=bindparam("b_now"), successor_id=bindparam("b_new"), successor_enc=bindparam("b_sealed"))
)
_FORGET = (
    update(_T)
    .where(
        _T.c.grant_id == bindparam("b_grant"),
        _T.c.successor_id == bindparam("b_old"),
        _T.c.successor_enc.is_not(None),
    )
    .values(successor_enc=None)
)


def _grant(row: GrantRow) -> GrantRecord:
    return GrantRecord(**{k: getattr(row, k) for k in _GRANT})


def _split(row: Any) -> tuple[TokenRecord, GrantRecord]:
    """A row of ``_FIND`` (token columns, then grant columns) as records."""
    n = len(_TOKEN)
    token = TokenRecord(**dict(zip(_TOKEN, row[:n], strict=True)))
    return token, GrantRecord(**dict(zip(_GRANT, row[n:], strict=True)))


def _token_values(token: TokenRecord) -> dict[str, Any]:
    return {k: getattr(token, k) for k in _TOKEN}


class SqlGrantTx:
    def __init__(self, s: Session, audit: SqlAuditLog, deny: SqlDenyStore) -> None:
        self._s = s
        self._audit = audit
        self._deny = deny

    def token_by_digest(self, digest: bytes, *, lock: bool = False) -> tuple[TokenRecord, GrantRecord] | None:
        params = {"digest": digest}
        if lock:
            # Serialise with rotation and revocation of the same family (SQLite: BEGIN IMMEDIATE does). Locks
            # are taken grant first, then token, as the rotation statement takes them; the other order
            # deadlocks against it.
            self._s.execute(_LOCK_GRANT, params)
        found = self._s.execute(_FIND_LOCKED if lock else _FIND, params).first()
        return _split(found) if found else None

    def use_grace(self, token_id: str, max_uses: int) -> bool:
        result = self._s.connection().execute(
            update(RefreshTokenRow)
            .where(RefreshTokenRow.id == token_id, RefreshTokenRow.grace_uses < max_uses)
            .values(grace_uses=RefreshTokenRow.grace_uses + 1)
        )
        return result.rowcount == 1

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
        refresh_digest: bytes | None = None,
    ) -> list[RevokedGrant]:
        given = {
            "b_id": grant_id,
            "b_code_digest": code_digest,
            "b_sid": sid,
            "b_user_id": user_id,
            "b_client_id": client_id,
            "b_refresh_digest": refresh_digest,
        }
        params: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
        if not params:
            raise ValueError("revoke needs at least one filter")
        conn, filters = self._s.connection(), tuple(params)
        marks = {"b_now": now, "b_reason": reason[:64]}
        if keep_offline:  # offline grants outlive the session: pick the others first
            found = conn.execute(self._revoke_statement(filters, pick=True), params)
            ids = [gid for gid, scope in found if OFFLINE not in scope.split()]
            if not ids:
                return []
            filters, params = ("b_ids",), {"b_ids": ids}
        # UPDATE ... RETURNING reports exactly the grants THIS call revoked: of two concurrent revocations only
        # one gets each grant (one audit event, one deny-list batch).
        revoked = conn.execute(self._revoke_statement(filters), params | marks).all()
        if not revoked:
            return []
        out = {gid: RevokedGrant(gid, cid, uid) for gid, cid, uid in revoked}
        # A separate statement after the UPDATE: it sees the access token of a rotation that held the grant row
        # until it committed (PostgreSQL READ COMMITTED takes a fresh snapshot per statement).
        live = conn.execute(self._revoke_statement(("b_ids",), live=True), {"b_ids": list(out), "b_now": now})
        for gid, jti, exp in live:
            out[gid].live_jtis.append((jti, exp))
        return list(out.values())

    _REVOKE_STATEMENTS: dict[tuple[Any, ...], Any] = {}

    @classmethod
    def _revoke_statement(cls, filters: tuple[str, ...], *, pick: bool = False, live: bool = False) -> Any:
        """Core statements of :meth:`revoke`, built once per combination of filters (building one costs
        several times what running it does): select the candidates (``pick``), revoke them, or read the live
        access tokens of revoked grants (``live``). Filters are ``b_<column>``, ``b_refresh_digest``, ``b_ids``."""
        key = (filters, pick, live)
        stmt = cls._REVOKE_STATEMENTS.get(key)
        if stmt is not None:
            return stmt
        g, t = GrantRow.__table__.c, RefreshTokenRow.__table__.c
        if live:
            stmt = select(t.grant_id, t.at_jti, t.at_exp).where(
                t.grant_id.in_(bindparam("b_ids", expanding=True)), t.at_jti.is_not(None), t.at_exp > bindparam("b_now")
            )
        else:
            where: list[Any] = [g.revoked_at.is_(None)]
            for name in filters:
                if name == "b_ids":
                    where.append(g.id.in_(bindparam(name, expanding=True)))
                elif name == "b_refresh_digest":  # the token's lookup rides in the statement: no round trip of its own
                    where.append(g.id.in_(select(t.grant_id).where(t.digest == bindparam(name))))
                else:
                    where.append(g[name.removeprefix("b_")] == bindparam(name))
            if pick:
                stmt = select(g.id, g.scope).where(*where)
            else:
                stmt = (
                    update(GrantRow.__table__)
                    .where(*where)
                    .values(revoked_at=bindparam("b_now"), revoked_reason=bindparam("b_reason"))
                    .returning(g.id, g.client_id, g.user_id)
                )
        cls._REVOKE_STATEMENTS[key] = stmt
        return stmt

    def audit(self, action: str, *, actor: str, subject: str | None, client_id: str | None, **detail: Any) -> None:
        self._audit.record(action, actor=actor, subject=subject, client_id=client_id, session=self._s, **detail)

    def deny(self, entries: Sequence[NewEntry], *, reason: str, actor: str, now: float) -> list[DenyEntry]:
        return self._deny.add_many_in(self._s, entries, reason=reason, actor=actor, now=now)


class SqlGrantStore:
    def __init__(self, sessions: sessionmaker[Session], audit: SqlAuditLog, deny: SqlDenyStore) -> None:
        """``deny``: where a revoking transaction writes the deny-list entries of its access tokens."""
        self._sessions = sessions
        self._audit = audit
        self._deny = deny
        engine: Engine = sessions.kw["bind"]
        # PostgreSQL: the three hot statements (find, open, rotate) go straight through psycopg, one round trip
        # each (idp.store.direct); SQLite: BEGIN IMMEDIATE ... COMMIT through SQLAlchemy.
        self._direct = Direct(engine) if engine.dialect.name == "postgresql" else None
        self._find_pg = Direct.compiled(_FIND) if self._direct is not None else ""  # _FIND in psycopg's style
        self._statement = single_statements(engine)

    def find(self, digest: bytes) -> tuple[TokenRecord, GrantRecord] | None:
        if self._direct is not None:
            found = self._direct.fetchone(self._find_pg, {"digest": digest})
        else:
            with self._statement() as conn:
                found = conn.execute(_FIND, {"digest": digest}).first()
        return _split(found) if found else None

    def open(self, grant: GrantRecord, token: TokenRecord) -> None:
        if self._direct is not None:
            params = _token_values(token) | {
                "grant_id": grant.id,
                "grant_scope": grant.scope,
                "grant_created_at": grant.created_at,
                **{k: getattr(grant, k) for k in _GRANT if k not in ("id", "scope", "created_at")},
            }
            self._direct.rowcount(_OPEN_PG, params | {"amr": self._direct.json(grant.amr)})
            return
        with self._statement() as conn:  # no data-modifying CTEs: two inserts in the one transaction
            conn.execute(_INSERT_GRANT, {k: getattr(grant, k) for k in _GRANT})
            conn.execute(_INSERT_TOKEN, _token_values(token))

    def rotate(self, old_id: str, successor: TokenRecord, *, now: float, sealed: bytes | None) -> bool:
        if self._direct is not None:
            params = _token_values(successor) | {"old_id": old_id, "now": now, "sealed": sealed}
            return self._direct.rowcount(_ROTATE_PG, params) == 1
        with self._statement() as conn:
            ids = {"b_old": old_id, "b_grant": successor.grant_id}
            marked = conn.execute(_MARK_ROTATED, ids | {"b_now": now, "b_new": successor.id, "b_sealed": sealed})
            if marked.rowcount != 1:
                return False  # nothing written: the commit is empty
            conn.execute(_INSERT_TOKEN, _token_values(successor))
            conn.execute(_FORGET, ids)
        return True

    def bind_key(self, grant_id: str, jkt: str) -> bool:
        with self._statement() as conn:
            return conn.execute(update(_G).where(_G.c.id == grant_id, _G.c.jkt.is_(None)).values(jkt=jkt)).rowcount > 0

    def revoke_token_family(
        self, digest: bytes, *, client_id: str, now: float, reason: str, actor: str, deny: DenyTerms
    ) -> tuple[list[RevokedGrant], list[list[DenyEntry]]] | None:
        """The family of the refresh token ``digest`` issued to ``client_id`` revoked, its live access tokens
        deny-listed and both audited, committed as one statement (PostgreSQL; None elsewhere: use
        :meth:`transaction`). Returns what THIS call revoked (nothing when another got there first)."""
        if self._direct is None:
            return None
        self._deny.ensure_version_row()
        params = {
            "digest": digest, "client_id": client_id, "now": now, "marked_reason": reason[:64], "reason": reason,
            "actor": actor, "version_key": DENY_VERSION_KEY, "leeway": deny.leeway, "deny_reason": deny.reason,
            "deny_actor": deny.actor,
        }  # fmt: skip
        rows = self._direct.fetchall(_REVOKE_FAMILY_PG, params)
        revoked = [RevokedGrant(gid, cid, uid) for kind, gid, cid, uid, _ in rows if kind == "grant"]
        entries = [
            DenyEntry(int(i), "jti", jti, exp, None, deny.reason, deny.actor, now)
            for kind, i, jti, _, exp in rows
            if kind == "entry"
        ]
        events: list[dict[str, Any]] = [
            {"action": "grant_revoked", "detail": {"grant_id": g.id, "reason": reason}} for g in revoked
        ]
        events += [{"action": "deny.added", "detail": _added_event(e)["detail"]} for e in entries]
        self._audit.written(events)
        batches = [entries]
        successors = [sid for kind, sid, *_ in rows if kind == "successor"]
        if successors:  # a rotation committed while this statement waited for the grant: its token too
            late = self._direct.fetchall(_LIVE_OF, {"ids": successors, "now": now})
            items = [NewEntry("jti", jti, None, exp + deny.leeway) for _, jti, exp in late]
            batches.append(self._deny.add_many(items, reason=deny.reason, actor=deny.actor, now=now))
        return revoked, batches

    @contextmanager
    def transaction(self) -> Iterator[SqlGrantTx]:
        self._deny.ensure_version_row()  # its own first write, before ours opens (SQLite: one writer)
        with self._sessions.begin() as s:
            yield SqlGrantTx(s, self._audit, self._deny)

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
