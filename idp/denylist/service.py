"""The IdP's deny-list: durable entries in SQL, an in-memory snapshot per process, a change feed.

Writers (logout, "sign out everywhere", refresh reuse detection, revocation, the CLI,
the admin API, key compromise) call :meth:`DenyList.deny`, or :meth:`DenyList.deny_many`
for a batch (a revoked grant's live access tokens). A batch commits in ONE transaction:
consecutive versions, one audit event per entry. This process applies it at once and
publishes each change as a signed SET on the ephemeral store's channel (Redis pub/sub
across instances).

Every other process keeps its snapshot fresh two ways: the pub/sub message wakes it
(:class:`idp.denylist.feed.DenyFeed` runs the subscriber), and it re-reads the SQL version every
``sync_seconds`` in case a message was lost (pub/sub is at-most-once; the CLI in
another process with the embedded store has no pub/sub at all). Staleness is therefore
bounded by ``sync_seconds`` (default 0.5 s) plus a query. SQL is the only source of
truth: a message only says "look".

Cut-offs (subject/session/client) are written at full precision, ``not_before`` = the instant
they were made, and compared exactly with ``iat``: a token issued earlier in the same second
(whole-second ``iat``) is denied with the rest (see :mod:`idp.denylist.denyset`). The cut-off
itself denies it: revoking refresh families also lists their live access tokens by ``jti``,
but not every token has a family and not every writer revokes one. So that a token minted
after a cut-off in that same second is not denied too, the IdP stamps it with
:func:`idp.denylist.denyset.issued_at` from :meth:`DenyList.latest_cutoff` (the next whole
second when a cut-off it holds lies in the current one). A worker that has not received
the cut-off yet (at most ``sync_seconds``) stamps ``int(now)`` and its token is denied:
fail closed, the client signs in again.
Refresh tokens carry their row's fractional ``created_at``, compared exactly as well.
:meth:`DenyList.deny_every_token` writes a cut-off whose ``not_before`` is its expiry: every
token issued while it lives is denied (a disabled or deleted client, whichever worker issued).

Entry lifetimes follow the tokens they can match (``expires_at``), after which the row
is purged: ``jti`` until the token's ``exp``; cut-offs (subject/session/client) for the
longest token lifetime; ``kid`` for the longest token lifetime plus the JWKS cache
lifetime plus a day (a forged token can claim any ``exp``, so the key must also have
left every resource server's JWKS cache by then).
"""

from __future__ import annotations

import builtins
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from idp.clock import Clock
from idp.denylist.denyset import DenySet
from idp.denylist.entries import (
    CUTOFF_KINDS,
    DenyChange,
    DenyEntry,
    NewEntry,
    check_new_entry,
    clip_actor,
    clip_reason,
)
from idp.denylist.secevent import CHANNEL, change_from_claims, peek_version, set_claims

log = logging.getLogger("idp.denylist")

REPLAY_LIMIT = 10_000  # beyond this, a follower resynchronises with GET /deny-list instead
SIGNED_CACHE = 2048
MAX_VERSION = 2**31 - 1  # deny_list.id is a 32-bit INTEGER
PRUNE_SECONDS = 1.0  # a sync prunes the snapshot at most this often: pruning walks every entry
GAP_LIMIT = 256
"""A process this many versions (or fewer) behind a change it holds reads just the versions in between
(:meth:`DenyList.advance`); further behind, or behind by an unknown amount, it syncs in full."""


class DenyStore(Protocol):
    """Durable deny entries; :class:`idp.store.denylist_repo.SqlDenyStore` implements it in SQL."""

    def version(self) -> int: ...

    def add_many(self, entries: Sequence[NewEntry], *, reason: str, actor: str, now: float) -> list[DenyEntry]:
        """Insert at the next consecutive versions, one audit event each, in one transaction (writes serialise)."""
        ...

    def remove(self, entry_id: int, *, actor: str, reason: str, now: float) -> DenyChange | None: ...

    def get(self, entry_id: int) -> DenyEntry | None: ...

    def live(self, now: float) -> tuple[int, list[DenyEntry]]: ...

    def changes_since(self, version: int, now: float, limit: int) -> tuple[int, list[DenyChange]]: ...

    def changes_between(self, after: int, upto: int, now: float) -> list[DenyChange]:
        """Committed changes ``after`` < version <= ``upto`` whose entries can still match, in version order; one
        indexed read. A prefix: every version up to the highest returned has committed, whether or not ``upto`` has."""
        ...

    def purge(self, now: float) -> int: ...


class Publisher(Protocol):
    def publish(self, channel: str, message: bytes) -> object: ...


class DenyList:
    """Implements :class:`idp.interaction.DenyWriter` and answers ``is_denied`` from memory."""

    def __init__(
        self,
        store: DenyStore,
        clock: Clock,
        *,
        issuer: str,
        sign: Callable[[dict[str, Any]], str],
        publisher: Publisher | None,
        verify: Callable[[str], dict[str, Any]] | None = None,
        token_lifetime: float,
        kid_lifetime: float,
        leeway: float = 60.0,
        sync_seconds: float = 0.5,
    ) -> None:
        """``sign(claims) -> compact JWS`` signs SETs; ``verify(token) -> claims`` checks a published one and raises
        ValueError when it does not verify (anything else: the keys could not be read); ``token_lifetime``: the
        longest-lived token we issue."""
        self._store = store
        self._clock = clock
        self._issuer = issuer
        self._sign = sign
        self._verify = verify
        self._publisher = publisher
        self._token_lifetime = token_lifetime
        self._kid_lifetime = kid_lifetime
        self._leeway = leeway
        self.sync_seconds = sync_seconds
        self._set = DenySet()
        self._loaded = False
        self._sync_lock = threading.Lock()
        self._gap_lock = threading.Lock()  # taken before _sync_lock, never while holding it
        self._synced_at = -math.inf  # time.monotonic(): freshness is wall time, not protocol time
        self._pruned_at = -math.inf  # time.monotonic()
        self._signed: OrderedDict[int, str] = OrderedDict()
        self._signed_lock = threading.Lock()
        self.listeners: list[Callable[[list[DenyChange] | None], None]] = []
        """Called in the applying thread with each batch of changes in version order; None = reloaded
        from scratch (followers of this process must resynchronise). Keep them quick."""

    # -- writing ---------------------------------------------------------------------------------
    def deny(self, kind: str, value: str, *, reason: str, actor: str, until: float | None = None) -> DenyEntry:
        return self.deny_many([(kind, value, until)], reason=reason, actor=actor)[0]

    def deny_every_token(self, kind: str, value: str, *, reason: str, actor: str) -> DenyEntry:
        """A cut-off covering every token issued until it expires, not only those issued before now."""
        if kind not in CUTOFF_KINDS:
            raise ValueError(f"kind must be one of {', '.join(CUTOFF_KINDS)}")
        now = self._clock.now()
        entry = self._new_entry(kind, value, None, now)
        entry = entry._replace(not_before=entry.expires_at)
        written = self._store.add_many([entry], reason=clip_reason(reason), actor=clip_actor(actor), now=now)
        self.committed(written)
        return written[0]

    def lift(self, kind: str, value: str, *, reason: str, actor: str) -> int:
        """End :meth:`deny_every_token` entries for ``value`` (a client enabled again): tokens issued from now on
        work; those issued before stay denied (an ordinary cut-off takes their place). Returns how many ended."""
        self.sync()
        now = self._clock.now()
        blanket = [e for e in self._set.cutoffs(kind, value) if e.not_before is not None and e.not_before > now]
        if not blanket:
            return 0
        self.deny(kind, value, reason=reason, actor=actor)
        return sum(self.remove(e.id, actor=actor, reason=reason) for e in blanket)

    def deny_many(self, items: Sequence[tuple[str, str, float | None]], *, reason: str, actor: str) -> list[DenyEntry]:
        """Add ``(kind, value, until)`` entries in one transaction, at consecutive versions (all or none).

        Revoking a grant denies all its live access tokens at once: one lock of the version row and
        one commit instead of one each, and followers see the batch as one step."""
        pending = self.prepare(items)  # all valid first
        if not pending:
            return []
        now = self._clock.now()
        entries = self._store.add_many(pending, reason=clip_reason(reason), actor=clip_actor(actor), now=now)
        self.committed(entries)
        return entries

    def prepare(self, items: Sequence[tuple[str, str, float | None]]) -> list[NewEntry]:
        """Validated entries with their lifetimes, for a store write in the caller's transaction."""
        now = self._clock.now()
        return [self._new_entry(kind, value, until, now) for kind, value, until in items]

    def committed(self, entries: Sequence[DenyEntry]) -> None:
        """Entries a transaction wrote (consecutive versions) after it committed: apply here, then publish."""
        if entries:
            self._committed([DenyChange(e.id, entry=e) for e in entries])

    def _new_entry(self, kind: str, value: str, until: float | None, now: float) -> NewEntry:
        """Validate one entry and give it the lifetime of the tokens it can match."""
        check_new_entry(kind, value, until)
        not_before = now if kind in CUTOFF_KINDS else None  # full precision: compared exactly with iat
        if kind == "kid":
            expires_at = now + self._kid_lifetime
        elif kind == "jti" and until is not None:
            expires_at = until + self._leeway  # the token's exp, plus the leeway verifiers allow
        else:
            expires_at = now + self._token_lifetime + self._leeway
        if until is not None and kind != "jti":
            expires_at = max(expires_at, until)
        return NewEntry(kind, value, not_before, expires_at)

    def remove(self, entry_id: int, *, actor: str, reason: str = "") -> bool:
        """Take an entry off before it expires (a mistaken entry). False when there is no such live entry."""
        change = self._store.remove(
            entry_id, actor=clip_actor(actor), reason=clip_reason(reason), now=self._clock.now()
        )
        if change is None:
            return False
        self._committed([change])
        return True

    def purge_expired(self) -> int:
        """Delete rows no token can match any more; returns how many."""
        now = self._clock.now()
        self._set.prune(now)
        return self._store.purge(now)

    def _committed(self, changes: list[DenyChange]) -> None:
        """Apply committed changes (consecutive versions) here at once, then tell the other processes."""
        self._ensure_loaded()
        self.advance(changes)
        if self._publisher is not None:
            try:
                # One message for the batch: a SET per version, in order, one per line (a compact JWS has no
                # newline); a subscriber applies them in turn (idp.denylist.feed).
                self._publisher.publish(CHANNEL, "\n".join(self.signed(change) for change in changes).encode())
            except Exception as exc:  # the rows are durable; others catch up from SQL within sync_seconds
                log.warning("deny-list: publish failed (%s); followers catch up from SQL", type(exc).__name__)

    def advance(self, changes: builtins.list[DenyChange]) -> None:
        """Hold ``changes`` (consecutive versions known to be committed: written here, or verified SETs).

        The versions before them that this process lacks committed first (versions commit in order). A
        gap of at most :data:`GAP_LIMIT` is read with one bounded statement, one such read at a time and
        outside the snapshot's lock (changes arriving in order meanwhile are applied). The read also takes
        the versions up to :data:`GAP_LIMIT` past ``changes`` that have committed since (what the version
        read of a full sync would have found), so that their SETs, when they arrive, are skipped
        unverified. A larger gap is a full sync."""
        first = changes[0].version
        with self._sync_lock:
            if self._advance_locked(changes, None):
                return
        # One gap read at a time: threads that wait here mostly find theirs filled by the read before.
        with self._gap_lock:
            with self._sync_lock:
                if self._advance_locked(changes, None):
                    return
                have = self._set.version
                if first - 1 - have > GAP_LIMIT:
                    self._sync_locked()  # reads our own versions too, in order
                    return
            read = self._store.changes_between(have, changes[-1].version + GAP_LIMIT, self._clock.now())
            with self._sync_lock:
                if not self._advance_locked(changes, (have, read)):
                    self._sync_locked()  # moved backwards meanwhile (a reload): read in order

    def _advance_locked(
        self, changes: builtins.list[DenyChange], gap: tuple[int, builtins.list[DenyChange]] | None
    ) -> bool:
        """Apply what this process lacks of ``changes``, after the versions before them when ``gap``
        (``(after, changes read from SQL after it)``, a consistent prefix reaching past ``changes[0]``) covers
        them, and then the read versions after ``changes``; False when the gap stays open. Listeners hear the
        whole step as one batch."""
        first, last = changes[0].version, changes[-1].version
        held = self._set.version
        if held >= last:
            return True  # already read from SQL
        read = gap[1] if gap is not None and gap[0] <= held else None  # None: not read from where we are
        if held < first - 1 and read is None:
            return False
        step = [c for c in read or () if held < c.version < first]
        step += [c for c in changes if c.version > held]
        step += [c for c in read or () if c.version > last]
        for change in step:
            self._set.apply(change)
        # Expired or purged versions left no rows: the version is the last one read, and at least ours.
        self._set.version = max(self._set.version, last, read[-1].version if read else 0)
        self._notify(step)
        return True

    def apply_published_batch(self, tokens: Sequence[str]) -> bool:
        """SETs other processes published after their commits (one message or several, in any order): each
        verified (the channel is not trusted to add entries), then held in version order with :meth:`advance`,
        so that the few versions in between that no SET here carries are read in one bounded statement, and
        kept for the change feed instead of a new signature. False (the caller syncs from SQL, which stays the
        source of truth) when one does not verify or there is nothing to verify with."""
        if self._verify is None or not self._loaded or not tokens:
            return False
        signed: dict[int, tuple[DenyChange, str]] = {}
        held = self._set.version
        try:
            for token in tokens:
                announced = peek_version(token)
                if announced is not None and announced <= held:
                    continue  # held already: not worth a verification
                change = change_from_claims(self._verify(token))
                if change.version > held:
                    signed[change.version] = (change, token)
        except ValueError:
            log.warning("deny-list: a published change did not verify; reading SQL instead")
            return False
        except Exception:  # the keys could not be read: SQL decides, as without the message
            return False
        run: builtins.list[DenyChange] = []
        for version in sorted(signed):
            if run and version != run[-1].version + 1:
                self.advance(run)
                run = []
            run.append(signed[version][0])
        if run:
            self.advance(run)
        for change, token in signed.values():
            self._remember_signed(change.version, token)
        return True

    # -- reading ---------------------------------------------------------------------------------
    def is_denied(self, claims: Mapping[str, Any], kid: str | None = None) -> bool:
        self.maybe_sync()
        return self._set.is_denied(claims, kid)

    def latest_cutoff(self, claims: Mapping[str, Any]) -> float:
        """The latest ``not_before`` naming these ``sub``/``sid``/``client_id`` (-inf: none), for stamping a new
        token's ``iat`` (:func:`idp.denylist.denyset.issued_at`). Memory only, as :meth:`is_denied`."""
        self.maybe_sync()
        return self._set.latest_cutoff(claims)

    @property
    def version(self) -> int:
        self._ensure_loaded()
        return self._set.version

    def snapshot(self) -> tuple[int, list[DenyEntry]]:
        """(version, live entries) from memory, as served by ``GET /deny-list``."""
        self.maybe_sync()
        now = self._clock.now()
        return self._set.version, [e for e in self._set.entries() if e.expires_at > now]

    def list(self) -> list[DenyEntry]:
        """Live entries with their reason and actor, straight from SQL (for operators)."""
        return self._store.live(self._clock.now())[1]

    def get(self, entry_id: int) -> DenyEntry | None:
        return self._store.get(entry_id)

    def changes_since(self, version: int, limit: int = REPLAY_LIMIT) -> tuple[int, builtins.list[DenyChange]] | None:
        """Changes after ``version`` from SQL, or None when the follower must resynchronise
        (its version is ahead of ours: another database, or more than ``limit`` changes behind)."""
        if not 0 <= version <= MAX_VERSION:
            return None
        current, changes = self._store.changes_since(version, self._clock.now(), limit + 1)
        if version > current or len(changes) > limit:
            return None
        return current, changes

    def signed(self, change: DenyChange) -> str:
        """The change as a signed SET; each version is signed once per process."""
        with self._signed_lock:
            cached = self._signed.get(change.version)
        if cached is not None:
            return cached
        token = self._sign(set_claims(change, issuer=self._issuer, now=self._clock.now()))
        self._remember_signed(change.version, token)
        return token

    def _remember_signed(self, version: int, token: str) -> None:
        with self._signed_lock:
            self._signed[version] = token
            while len(self._signed) > SIGNED_CACHE:
                self._signed.popitem(last=False)

    # -- freshness -------------------------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        if not self._loaded:
            with self._sync_lock:
                if not self._loaded:
                    version, entries = self._store.live(self._clock.now())
                    self._set.replace(entries, version)
                    self._loaded = True
                    self._synced_at = time.monotonic()

    def maybe_sync(self) -> None:
        """Re-check SQL inline when nothing has refreshed the snapshot for two intervals: a process without
        the background poll (the CLI, tests), or one whose poll is stuck. The poll normally gets there first."""
        if time.monotonic() - self._synced_at >= 2 * self.sync_seconds:
            try:
                self.sync_if_changed()
            except Exception:
                self._synced_at = time.monotonic()  # back off for one interval; keep the last snapshot
                log.exception("deny-list: cannot re-check the SQL version; using the last snapshot")

    def sync_if_changed(self) -> None:
        if not self._loaded:
            self._ensure_loaded()
            return
        if self._store.version() != self._set.version:
            self.sync()
        else:
            self._synced_at = time.monotonic()

    def sync(self) -> builtins.list[DenyChange]:
        """Apply every committed change after our version, in order; notify listeners."""
        self._ensure_loaded()
        with self._sync_lock:
            return self._sync_locked()

    def _sync_locked(self) -> builtins.list[DenyChange]:
        checked = time.monotonic()
        found = self.changes_since(self._set.version)
        if found is None:  # ahead of the database (restored?) or too far behind to replay: reload
            version, entries = self._store.live(self._clock.now())
            self._set.replace(entries, version)
            self._synced_at = checked
            log.warning("deny-list: reloaded the snapshot at version %d", version)
            self._notify(None)
            return []
        current, changes = found
        for change in changes:
            self._set.apply(change)
        self._set.version = max(self._set.version, current)
        if checked - self._pruned_at >= PRUNE_SECONDS:  # an expired entry matches no live token: no hurry
            self._set.prune(self._clock.now())
            self._pruned_at = checked
        self._synced_at = checked
        if changes:
            self._notify(changes)
        return changes

    def _notify(self, changes: builtins.list[DenyChange] | None) -> None:
        """Called with the sync lock held, so listeners see batches in version order."""
        for listener in list(self.listeners):
            try:
                listener(changes)
            except Exception:
                log.exception("deny-list listener failed")
