"""In-memory stand-ins for the stores the token core reaches through Protocols."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from idp.denylist.entries import DenyEntry
from idp.tokens.refresh import GrantRecord, RevokedGrant, TokenRecord


class MemoryGrantTx:
    def __init__(self, store: MemoryGrantStore) -> None:
        self.s = store
        self.audits: list[tuple[str, dict[str, Any]]] = []

    def token_by_digest(self, digest: bytes, *, lock: bool = False) -> tuple[TokenRecord, GrantRecord] | None:
        self.s.locked_reads.append(lock)
        return self.s.find(digest)

    def use_grace(self, token_id: str, max_uses: int) -> bool:
        t = self.s.tokens[token_id]
        if t.grace_uses >= max_uses:
            return False
        t.grace_uses += 1
        return True

    def revoke(
        self, *, now: float, reason: str, keep_offline: bool = False, refresh_digest: bytes | None = None, **where: Any
    ) -> list[RevokedGrant]:
        if refresh_digest is not None:  # the grant of that refresh token
            found = self.s.find(refresh_digest)
            if found is None or where.get("grant_id") not in (None, found[1].id):
                return []
            where["grant_id"] = found[1].id
        out = []
        for g in self.s.grants.values():
            names = {"grant_id": "id"}
            if g.revoked_at is not None or any(
                getattr(g, names.get(k, k)) != v for k, v in where.items() if v is not None
            ):
                continue
            if keep_offline and g.offline:
                continue
            g.revoked_at, g.revoked_reason = now, reason
            live = [
                (t.at_jti, t.at_exp)
                for t in self.s.tokens.values()
                if t.grant_id == g.id and t.at_jti and t.at_exp and t.at_exp > now
            ]
            out.append(RevokedGrant(g.id, g.client_id, g.user_id, live))
        return out

    def audit(self, action: str, **kw: Any) -> None:
        self.s.audits.append((action, kw))

    def deny(self, entries: list[Any], *, reason: str, actor: str, now: float) -> list[DenyEntry]:
        first = len(self.s.denied) + 1
        written = [
            DenyEntry(
                first + i, e.kind, e.value, e.expires_at, e.not_before, reason=reason, actor=actor, created_at=now
            )
            for i, e in enumerate(entries)
        ]
        self.s.denied.extend(written)
        return written


class MemoryGrantStore:
    def __init__(self) -> None:
        self.grants: dict[str, GrantRecord] = {}
        self.tokens: dict[str, TokenRecord] = {}
        self.audits: list[tuple[str, dict[str, Any]]] = []
        self.denied: list[DenyEntry] = []  # what revoking transactions wrote to the deny-list
        self.locked_reads: list[bool] = []  # the ``lock`` of every read inside a transaction
        self.purges: list[tuple[float, float]] = []  # (now, grace_seconds) of every purge

    @contextmanager
    def transaction(self) -> Iterator[MemoryGrantTx]:
        saved = copy.deepcopy((self.grants, self.tokens, self.denied))
        try:
            yield MemoryGrantTx(self)
        except BaseException:
            self.grants, self.tokens, self.denied = saved
            raise

    def revoke_token_family(self, digest: bytes, **_: Any) -> None:
        return None  # no one-statement path: the transaction one is what these tests exercise

    def find(self, digest: bytes) -> tuple[TokenRecord, GrantRecord] | None:
        for t in self.tokens.values():
            if t.digest == digest:
                return copy.copy(t), copy.copy(self.grants[t.grant_id])
        return None

    def open(self, grant: GrantRecord, token: TokenRecord) -> None:
        self.grants[grant.id] = copy.copy(grant)
        self.tokens[token.id] = copy.copy(token)

    def bind_key(self, grant_id: str, jkt: str) -> bool:
        if self.grants[grant_id].jkt is not None:
            return False
        self.grants[grant_id].jkt = jkt
        return True

    def rotate(self, old_id: str, successor: TokenRecord, *, now: float, sealed: bytes | None) -> bool:
        old = self.tokens[old_id]
        if old.rotated_at is not None or self.grants[old.grant_id].revoked_at is not None:
            return False
        old.rotated_at, old.successor_id, old.successor_enc = now, successor.id, sealed
        self.tokens[successor.id] = copy.copy(successor)
        for t in self.tokens.values():
            if t.successor_id == old_id:
                t.successor_enc = None
        return True

    def grants_for_user(self, user_id: str, now: float) -> list[GrantRecord]:
        return [
            g
            for g in self.grants.values()
            if g.user_id == user_id and g.revoked_at is None and g.absolute_expires_at > now
        ]

    def purge(self, *, now: float, grace_seconds: float) -> int:
        self.purges.append((now, grace_seconds))
        return 0
