"""Grant families: rotating refresh tokens with reuse detection, and family revocation.

A *grant* is everything issued from one authorization (one code exchange). Each
issuance within it is one ``refresh_tokens`` row: the refresh token's digest (if
one was issued) and the access token's ``jti``/``exp`` sent with it, so revoking
the grant can deny-list every live access token of the family.

Rotation (RFC 9700 §4.14.2) is ONE atomic write (``GrantStore.rotate``): the old
row is marked rotated with a conditional UPDATE (``WHERE rotated_at IS NULL`` and
the grant is live), so of several concurrent refreshes exactly one wins, and the
successor is inserted with it. The winner also stores its response, sealed, on
the old row. The read before it and the minting happen outside any transaction.
A repeat of the same refresh within the grace window (``grace_seconds``, at most
``grace_max_uses`` times) returns that *same* successor: a retry or a second
tab gets the tokens the first one got, never a second branch. Any other
presentation of a rotated token is treated as theft: the family is revoked, its
live access tokens deny-listed, and an audit event written.

Default grace: 5 s and 3 repeats (settings). Long enough for a retry after a
lost response or two tabs refreshing at once, short enough that a stolen token
replayed later still trips reuse detection. 0 turns it off.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import orjson

from idp.clock import Clock
from idp.crypto import Digester, Sealer, random_token
from idp.denylist.entries import clip_actor, clip_reason
from idp.errors import InvalidGrant, InvalidScope
from idp.events import Events, GrantRevoked
from idp.interaction import DenyWriter

REFRESH_BYTES = 32  # 256 bits, opaque
RECENT_MAX = 2048  # refresh tokens this process issued last, kept to skip the read of their next rotation
OFFLINE = "offline_access"


@dataclass
class GrantRecord:
    id: str
    client_id: str
    user_id: str | None
    sid: str | None
    scope: str
    audience: str
    auth_time: float | None
    acr: str | None
    amr: list[str]
    code_digest: bytes | None
    created_at: float
    absolute_expires_at: float
    revoked_at: float | None = None
    revoked_reason: str | None = None
    jkt: str | None = None  # RFC 9449 §5: refreshing needs a DPoP proof by this key (RFC 7638 thumbprint)

    @property
    def offline(self) -> bool:
        return OFFLINE in self.scope.split()


@dataclass
class TokenRecord:
    id: str
    grant_id: str
    digest: bytes | None
    scope: str
    created_at: float
    idle_expires_at: float
    at_jti: str | None = None
    at_exp: float | None = None
    rotated_at: float | None = None
    successor_id: str | None = None
    successor_enc: bytes | None = None
    grace_uses: int = 0


@dataclass
class Minted:
    """What the token endpoint issues alongside a refresh token: the response body and the AT it contains."""

    response: dict[str, Any]
    at_jti: str
    at_exp: float


@dataclass
class RevokedGrant:
    id: str
    client_id: str
    user_id: str | None
    live_jtis: list[tuple[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class DenyTerms:
    """How a store writing deny-list entries itself words them: a ``jti`` entry lives until its token's
    ``exp`` plus ``leeway``, with this (clipped) reason and actor."""

    leeway: float
    reason: str
    actor: str


class GrantTx(Protocol):
    """One database transaction over grants and refresh tokens (idp.store.grants_repo)."""

    def token_by_digest(self, digest: bytes, *, lock: bool = False) -> tuple[TokenRecord, GrantRecord] | None:
        """The issuance and its grant; ``lock`` holds both rows until commit (rotation vs revocation)."""
        ...

    def use_grace(self, token_id: str, max_uses: int) -> bool:
        """Conditional increment of ``grace_uses`` below ``max_uses``."""
        ...

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
        """Revoke the live grants matching every given filter (``refresh_digest``: the grant of that refresh
        token); returns the grants THIS call revoked, with their live AT jtis."""
        ...

    def audit(self, action: str, *, actor: str, subject: str | None, client_id: str | None, **detail: Any) -> None: ...

    def deny(self, entries: Sequence[Any], *, reason: str, actor: str, now: float) -> list[Any]:
        """Write deny-list entries (``DenyWriter.prepare``'s) in this transaction; the entries written."""
        ...


class GrantStore(Protocol):
    def transaction(self) -> AbstractContextManager[GrantTx]: ...

    def find(self, digest: bytes) -> tuple[TokenRecord, GrantRecord] | None:
        """The issuance and its grant, read without a transaction (the first look of a rotation)."""
        ...

    def open(self, grant: GrantRecord, token: TokenRecord) -> None:
        """Insert a new family with its first issuance, atomically."""
        ...

    def rotate(self, old_id: str, successor: TokenRecord, *, now: float, sealed: bytes | None) -> bool:
        """Atomically: mark ``old_id`` rotated (to ``successor``, keeping ``sealed`` for grace repeats) unless it
        already is or its grant is revoked, insert ``successor``, and drop the grace copy held by ``old_id``'s
        own predecessor. True for the one caller that rotated it; revocation of the family serialises with it."""
        ...

    def bind_key(self, grant_id: str, jkt: str) -> bool:
        """Bind an unbound family to a DPoP key from now on (RFC 9449 §5); a bound family keeps its key.
        True when this call bound it."""
        ...

    def revoke_token_family(
        self, digest: bytes, *, client_id: str, now: float, reason: str, actor: str, deny: DenyTerms
    ) -> tuple[list[RevokedGrant], list[list[Any]]] | None:
        """The revocation by refresh token in one atomic write, when the store has one (None: use
        :meth:`transaction`): the family of ``digest`` revoked if issued to ``client_id``, its live access
        tokens deny-listed and both audited. Returns the grants THIS call revoked and the deny entries written,
        in batches of consecutive versions."""
        ...

    def grants_for_user(self, user_id: str, now: float) -> list[GrantRecord]: ...

    def purge(self, *, now: float, grace_seconds: float) -> int:
        """Drop sealed grace copies older than the window and rows of long-dead grants."""
        ...


class _LostRace(Exception):
    pass


class RefreshTokens:
    """Implements :class:`idp.interaction.GrantRevoker`, rotation, and the lookups revocation needs."""

    def __init__(
        self,
        store: GrantStore,
        digester: Digester,
        sealer: Sealer,
        clock: Clock,
        *,
        idle_ttl: float,
        absolute_ttl: float,
        grace_seconds: float,
        grace_max_uses: int,
        denylist: DenyWriter | None = None,
        events: Events | None = None,
    ) -> None:
        self._store = store
        self._digester = digester
        self._sealer = sealer
        self._clock = clock
        self.idle_ttl = idle_ttl
        self.absolute_ttl = absolute_ttl
        self.grace_seconds = grace_seconds
        self.grace_max_uses = grace_max_uses
        self._denylist = denylist
        self._events = events or Events()
        # digest -> (row, grant) of refresh tokens this process just issued, so their rotation skips the read
        # (one statement instead of two). Safe to be stale: the rotation's single statement re-checks what can
        # change (the row not rotated, the grant not revoked) and a loser re-reads under lock (step 3); the
        # rest of a row and its grant never change but the family's DPoP key, which only a rotation binds, and
        # the remembered successor carries it. Used once (popped), bounded, oldest dropped first.
        self._recent: dict[bytes, tuple[TokenRecord, GrantRecord]] = {}
        self._recent_lock = threading.Lock()

    # -- issuing ---------------------------------------------------------------------------------
    def start(
        self,
        *,
        client_id: str,
        user_id: str,
        sid: str | None,
        scope: str,
        audience: str,
        auth_time: float | None,
        acr: str | None,
        amr: list[str],
        code_digest: bytes | None,
        at_jti: str,
        at_exp: float,
        with_refresh: bool,
        jkt: str | None = None,
    ) -> tuple[GrantRecord, str | None]:
        """Open a family for a code exchange; returns it and the first refresh token (if any). ``jkt``: the key
        every refresh of the family must prove (RFC 9449 §5), None for an unbound family."""
        now = self._clock.now()
        grant = GrantRecord(
            id=secrets.token_urlsafe(16),
            client_id=client_id,
            user_id=user_id,
            sid=sid,
            scope=scope,
            audience=audience,
            auth_time=auth_time,
            acr=acr,
            amr=list(amr),
            code_digest=code_digest,
            created_at=now,
            absolute_expires_at=now + self.absolute_ttl,  # ASVS V10.4.8: absolute cap despite sliding
            jkt=jkt,
        )
        token = random_token(REFRESH_BYTES) if with_refresh else None
        row = TokenRecord(
            id=secrets.token_urlsafe(16),
            grant_id=grant.id,
            digest=self._digester.digest(token) if token else None,  # stored hashed, never the token
            scope=scope,
            created_at=now,
            idle_expires_at=min(now + self.idle_ttl, grant.absolute_expires_at),
            at_jti=at_jti,
            at_exp=at_exp,
        )
        self._store.open(grant, row)
        if row.digest is not None:
            self._remember(row.digest, row, grant)
        return grant, token

    # -- rotation --------------------------------------------------------------------------------
    def rotate(
        self,
        token: str,
        *,
        client_id: str,
        scope: list[str] | None,
        mint: Callable[[GrantRecord, str], Minted],
        actor: str = "",
        jkt: str | None = None,
        bind: bool = False,
    ) -> dict[str, Any]:
        """Exchange a refresh token for a new response (with a new refresh token). Raises InvalidGrant/Scope.

        ``jkt``: the thumbprint of the key the request's DPoP proof was signed with, None without a proof; a
        family bound to a key refuses any other (RFC 9449 §5). ``bind``: an unbound family refreshed with a
        proof is bound to its key from this refresh on (its new refresh token is issued to a DPoP request)."""
        digest = self._digester.digest(token)
        bind_to = jkt if bind else None
        for _ in range(3):
            try:
                return self._rotate_once(
                    digest, client_id=client_id, scope=scope, mint=mint, actor=actor, jkt=jkt, bind_to=bind_to
                )
            except _LostRace:
                continue  # another request rotated it first: read again, now as a repeat
        raise InvalidGrant("refresh token is being used concurrently")

    def _rotate_once(
        self,
        digest: bytes,
        *,
        client_id: str,
        scope: list[str] | None,
        mint: Callable[[GrantRecord, str], Minted],
        actor: str,
        jkt: str | None,
        bind_to: str | None,
    ) -> dict[str, Any]:
        now = self._clock.now()
        # 1. Read and check, then mint OUTSIDE any transaction: minting reads (the user, the keyring) and
        #    signs, and must neither wait on nor hold a lock (SQLite has one write lock per database).
        row, grant = self._check(self._recall(digest) or self._store.find(digest), client_id, jkt)
        self._check_cut_offs(row, grant)
        if row.rotated_at is None:
            if now >= grant.absolute_expires_at:
                raise InvalidGrant("refresh token expired")  # absolute lifetime (ASVS V10.4.8)
            if now >= row.idle_expires_at:
                raise InvalidGrant("refresh token expired")  # idle lifetime (RFC 9700 §4.14.2)
            if bind_to is not None and grant.jkt is None:
                # RFC 9449 §5: the family is bound (committed) before its successor exists, so no unbound
                # successor can be left behind if this request fails between the two writes.
                if not self._store.bind_key(grant.id, bind_to):
                    raise _LostRace  # another request bound it meanwhile: read again, and check its key
                grant = replace(grant, jkt=bind_to)  # what is remembered is the family as it now is
            new_scope = narrow_scope(grant.scope, scope)
            response, successor, sealed = self._successor(row, grant, new_scope, mint(grant, new_scope), now)
            # 2. RFC 9700 §4.14.2 rotation in one atomic write that admits exactly one winner per token.
            if self._store.rotate(row.id, successor, now=now, sealed=sealed):
                if successor.digest is not None:
                    self._remember(successor.digest, successor, grant)
                return response
            # Lost: another request rotated it (or the family was revoked) meanwhile; decide below, under lock.
        # 3. A rotated token: a repeat within grace gets the same successor, anything else is reuse.
        with self._store.transaction() as tx:
            row, grant = self._check(tx.token_by_digest(digest, lock=True), client_id, jkt)
            if row.rotated_at is None:
                raise _LostRace  # rotated and then undone? read again
            repeat = self._repeat(tx, row, now)
            if repeat is not None:
                return repeat
            # RFC 9700 §4.14.2: a rotated token presented again is theft; revoke the whole family.
            revoked = tx.revoke(now=now, reason="refresh token reuse", grant_id=grant.id)
            tx.audit(
                "refresh_token_reuse",
                actor=actor or client_id,
                subject=grant.user_id,
                client_id=client_id,
                grant_id=grant.id,
            )
            denied = self._deny_in(tx, revoked, reason="refresh token reuse", actor=actor or client_id)
        self._denied(denied)
        self._published(revoked, actor=actor or client_id, reason="refresh token reuse")
        raise InvalidGrant("refresh token was already used; the grant is revoked")

    def _remember(self, digest: bytes, row: TokenRecord, grant: GrantRecord) -> None:
        with self._recent_lock:
            self._recent[digest] = (row, grant)
            if len(self._recent) > RECENT_MAX:
                del self._recent[next(iter(self._recent))]

    def _recall(self, digest: bytes) -> tuple[TokenRecord, GrantRecord] | None:
        with self._recent_lock:
            return self._recent.pop(digest, None)

    @staticmethod
    def _check(
        found: tuple[TokenRecord, GrantRecord] | None, client_id: str, jkt: str | None
    ) -> tuple[TokenRecord, GrantRecord]:
        if found is None:
            raise InvalidGrant("unknown refresh token")
        row, grant = found
        if grant.client_id != client_id:
            raise InvalidGrant("refresh token was issued to another client")  # RFC 6749 §6: bound to client
        if grant.jkt is not None and jkt != grant.jkt:  # RFC 9449 §5: a bound refresh token needs its key's proof
            raise InvalidGrant("the refresh token is bound to another DPoP key" if jkt else "a DPoP proof is required")
        if grant.revoked_at is not None:
            raise InvalidGrant("refresh token was revoked")
        return row, grant

    def _check_cut_offs(self, row: TokenRecord, grant: GrantRecord) -> None:
        """A subject or client cut-off ("not before") covers refresh tokens issued before it too, so the token
        endpoint agrees with introspection. Session cut-offs do not: offline grants outlive their session.

        Called outside any transaction: the deny-list may read SQL, and SQLite has one write lock.
        """
        deny = self._denylist
        if deny is not None and deny.is_denied(
            {"sub": grant.user_id or grant.client_id, "client_id": grant.client_id, "iat": row.created_at}
        ):
            raise InvalidGrant("refresh token was revoked")

    def _successor(
        self, row: TokenRecord, grant: GrantRecord, scope: str, minted: Minted, now: float
    ) -> tuple[dict[str, Any], TokenRecord, bytes | None]:
        """The response with a new refresh token, the row that records it, and the response sealed for repeats."""
        new_token = random_token(REFRESH_BYTES)
        successor = TokenRecord(
            id=secrets.token_urlsafe(16),
            grant_id=grant.id,
            digest=self._digester.digest(new_token),
            scope=scope,
            created_at=now,
            idle_expires_at=min(now + self.idle_ttl, grant.absolute_expires_at),
            at_jti=minted.at_jti,
            at_exp=minted.at_exp,
        )
        response = {**minted.response, "refresh_token": new_token}
        sealed = self._sealer.seal(orjson.dumps(response), row.id.encode()) if self.grace_seconds > 0 else None
        return response, successor, sealed

    def _repeat(self, tx: GrantTx, row: TokenRecord, now: float) -> dict[str, Any] | None:
        """The same successor again, inside the grace window and count; None when that does not apply."""
        if (
            self.grace_seconds <= 0
            or row.successor_enc is None
            or row.rotated_at is None
            or now - row.rotated_at > self.grace_seconds
        ):
            return None
        if not tx.use_grace(row.id, self.grace_max_uses):
            return None
        return orjson.loads(self._sealer.open(row.successor_enc, row.id.encode()))

    # -- revocation (GrantRevoker) --------------------------------------------------------------
    def _revoke(self, *, actor: str, reason: str, **where: Any) -> list[RevokedGrant]:
        with self._store.transaction() as tx:
            revoked, denied = self._revoke_in(tx, actor=actor, reason=reason, **where)
        self._denied(denied)
        self._published(revoked, actor=actor, reason=reason)
        return revoked

    def _revoke_in(self, tx: GrantTx, *, actor: str, reason: str, **where: Any) -> tuple[list[RevokedGrant], list[Any]]:
        """Revoke, audit and deny-list inside the caller's transaction; :meth:`_denied` follows its commit."""
        revoked = tx.revoke(now=self._clock.now(), reason=reason, **where)
        for g in revoked:
            tx.audit(
                "grant_revoked", actor=actor, subject=g.user_id, client_id=g.client_id, grant_id=g.id, reason=reason
            )
        return revoked, self._deny_in(tx, revoked, reason=reason, actor=actor)

    def _deny_in(self, tx: GrantTx, revoked: list[RevokedGrant], *, reason: str, actor: str) -> list[Any]:
        """Deny-list the families' live access tokens, so resource servers drop them before they expire, in
        the transaction that revokes the families: one commit for both, and never one without the other."""
        deny = self._denylist
        items = [("jti", jti, exp) for g in revoked for jti, exp in g.live_jtis]
        if deny is None or not items:
            return []
        return tx.deny(deny.prepare(items), reason=clip_reason(reason), actor=clip_actor(actor), now=self._clock.now())

    def _denied(self, entries: list[Any]) -> None:
        """After the commit: the deny-list applies the entries here and tells the other processes."""
        deny = self._denylist
        if deny is not None and entries:
            deny.committed(entries)

    def _published(self, revoked: list[RevokedGrant], *, actor: str, reason: str) -> None:
        """After the commit: one :class:`idp.events.GrantRevoked` per family."""
        for g in revoked:
            self._events.publish(GrantRevoked(g.id, g.client_id, g.user_id, actor, reason))

    def revoke_grant(self, grant_id: str, *, actor: str, reason: str) -> bool:
        return bool(self._revoke(actor=actor, reason=reason, grant_id=grant_id))

    def revoke_by_code(self, code_digest: bytes, *, actor: str, reason: str) -> bool:
        """RFC 6749 §4.1.2: a replayed code revokes every token issued from it."""
        return bool(self._revoke(actor=actor, reason=reason, code_digest=code_digest))

    def revoke_for_session(self, sid: str, *, keep_offline: bool, actor: str, reason: str) -> int:
        return len(self._revoke(actor=actor, reason=reason, sid=sid, keep_offline=keep_offline))

    def revoke_for_user(self, user_id: str, *, actor: str, reason: str, client_id: str | None = None) -> int:
        return len(self._revoke(actor=actor, reason=reason, user_id=user_id, client_id=client_id))

    def revoke_refresh_token(self, token: str, *, client_id: str, actor: str) -> bool:
        """RFC 7009 §2.1: revoking a refresh token revokes its grant (and the grant's access tokens).

        Only the client it was issued to may revoke it; anything else is a silent no-op. True when this call
        revoked the grant.
        """
        return self._revoke_by_token(token, client_id=client_id, actor=actor)[1]

    def revoke_by_refresh_token(self, token: str, *, client_id: str, actor: str) -> str | None:
        """:meth:`revoke_refresh_token` for the revocation endpoint, which must tell another client's token from
        an unknown one (to audit the attempt): returns the client the token was issued to, None when unknown.
        Rotated and expired tokens take their family with them too."""
        return self._revoke_by_token(token, client_id=client_id, actor=actor)[0]

    def _revoke_by_token(self, token: str, *, client_id: str, actor: str) -> tuple[str | None, bool]:
        """(owner, revoked). The lookup, the ownership check and the revocation are ONE UPDATE in one
        transaction; only when it revokes nothing (unknown, another client's, already revoked) does a
        second read say which."""
        if not self._plausible(token):
            return None, False
        digest = self._digester.digest(token)
        reason = "revoked by client"
        at_once = self._revoke_token_family(digest, client_id=client_id, actor=actor, reason=reason)
        if at_once is not None:
            revoked, batches = at_once
            if revoked:
                for batch in batches:
                    self._denied(batch)
                self._published(revoked, actor=actor, reason=reason)
                return client_id, True
        else:
            with self._store.transaction() as tx:  # client_id: RFC 6749 §6, a token is bound to its client
                revoked, denied = self._revoke_in(
                    tx, actor=actor, reason=reason, refresh_digest=digest, client_id=client_id
                )
            if revoked:
                self._denied(denied)
                self._published(revoked, actor=actor, reason=reason)
                return client_id, True
        found = self._store.find(digest)
        return (None if found is None else found[1].client_id), False

    def _revoke_token_family(
        self, digest: bytes, *, client_id: str, actor: str, reason: str
    ) -> tuple[list[RevokedGrant], list[list[Any]]] | None:
        """The store's one-statement revocation (None when it has none, or there is no deny-list to write to)."""
        deny = self._denylist
        if deny is None:
            return None
        # The deny-list's own rule for a jti entry's lifetime: its token's exp plus a fixed leeway.
        leeway = deny.prepare([("jti", "lifetime", 0.0)])[0].expires_at
        terms = DenyTerms(leeway=leeway, reason=clip_reason(reason), actor=clip_actor(actor))
        now = self._clock.now()
        return self._store.revoke_token_family(
            digest, client_id=client_id, now=now, reason=reason, actor=actor, deny=terms
        )

    # -- lookups ---------------------------------------------------------------------------------
    @staticmethod
    def _plausible(token: str) -> bool:
        """Worth hashing and looking up: ours are 43 characters; a huge string is refused before any work."""
        return bool(token) and len(token) <= 512

    def lookup(self, token: str) -> tuple[TokenRecord, GrantRecord] | None:
        """The row and grant of a refresh token; None unless active (not rotated, revoked or expired)."""
        if not self._plausible(token):
            return None
        found = self._store.find(self._digester.digest(token))  # one read: no transaction needed
        if found is None:
            return None
        row, grant = found
        now = self._clock.now()
        if (
            row.rotated_at is not None
            or grant.revoked_at is not None
            or now >= row.idle_expires_at
            or now >= grant.absolute_expires_at
        ):
            return None
        return found

    def grants_for_user(self, user_id: str) -> list[GrantRecord]:
        """Live grants (for the account page and admin tools)."""
        return self._store.grants_for_user(user_id, self._clock.now())

    def purge(self) -> int:
        return self._store.purge(now=self._clock.now(), grace_seconds=self.grace_seconds)


def narrow_scope(granted: str, requested: list[str] | None) -> str:
    """RFC 6749 §6: the requested scope MUST NOT include any scope not originally granted."""
    if not requested:
        return granted
    allowed = granted.split()
    extra = [s for s in requested if s not in allowed]
    if extra:
        raise InvalidScope("the requested scope exceeds the original grant")  # RFC 6749 §6
    return " ".join(s for s in allowed if s in requested)
