"""The deny-list matcher: a snapshot of entries answering ``is_denied(claims, kid)`` with no I/O.

Used by the IdP (introspection, admin API) and by resource servers (``idp.resource``).
Entry kinds (:mod:`idp.denylist.entries`) and what they match:

* ``jti``: the token with this ``jti`` (entry kept until that token's ``exp`` plus leeway);
* ``subject`` / ``session`` / ``client``: tokens whose ``sub`` / ``sid`` / ``client_id``
  equals the value and whose ``iat`` is before ``not_before`` ("everything issued before
  T"). Both are compared exactly: ``not_before`` is the instant the cut-off was made, and a
  whole-second ``iat`` in that same second is before it, so it is denied (fail closed: a
  token issued at T+0.2 has ``iat`` T and dies with a cut-off made at T+0.7). The IdP never
  mints a token such a cut-off would deny by mistake: when a cut-off it holds lies inside
  the current second, :func:`issued_at` stamps the token with the next whole second, so a
  sign-in right after "sign out everywhere" gets a working token. An entry whose
  ``not_before`` is its ``expires_at`` denies every token issued while it lives (a
  disabled or deleted client);
* ``kid``: every token signed by that key (a compromised key).

A token without a numeric ``iat`` cannot prove it is newer than a cut-off, so it is
denied whenever a cut-off entry names it (fail closed).

Readers do not lock: mutations build the new per-value cut-off first and then assign
it, and single dict operations are atomic under the GIL.

``jti`` entries, nearly all of a large list, live packed in a :class:`~idp.denylist.jtitable.JtiTable`
(~60 bytes each instead of ~400 as objects); only a ``jti`` it cannot pack (longer than 16
characters, not ASCII) is kept as an object with the other kinds.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from idp.denylist.entries import CUTOFF_CLAIMS, KINDS, DenyChange, DenyEntry, is_time
from idp.denylist.jtitable import JtiTable


def issued_at(now: float, latest_cutoff: float) -> int:
    """The whole-second ``iat`` for a token minted at ``now`` that no cut-off already made can deny.

    ``int(now)``, unless a cut-off naming the token (``latest_cutoff``, see
    :meth:`DenySet.latest_cutoff`) lies after it in the same second: then the next whole
    second, ``ceil(latest_cutoff)``, at most 1 s ahead of ``now``. The token was minted after
    that cut-off was made (this process already holds it), so saying "issued at or after it"
    is true. RFC 7519 §4.1.6 does not forbid an ``iat`` slightly ahead, and every verifier
    here accepts one up to its leeway (``idp.tokens.jwt.LEEWAY``, 30 s, for the IdP and
    ``idp.resource``; REQUIREMENTS allow 60 s). A cut-off further ahead is a "deny every
    token until it expires" entry (a disabled client): it keeps denying, fail closed.

    The one case whole seconds cannot tell apart: a token stamped past a cut-off made at
    T+0.3 reads as issued at T+1, so a second cut-off naming it at T+0.7 does not cover it
    (it does cover everything issued before T+0.3 and every unstamped token of second T).
    """
    iat = math.floor(now)
    if iat < latest_cutoff <= iat + 1:
        return math.ceil(latest_cutoff)
    return iat


class DenySet:
    """An in-memory deny-list at a version. Mutations take a lock; ``is_denied`` does not."""

    def __init__(self, entries: Iterable[DenyEntry] = (), version: int = 0) -> None:
        self._lock = threading.Lock()
        self.version = version
        self._by_id: dict[int, DenyEntry] = {}  # every entry except the packed ones
        self._packed = JtiTable()  # the jti entries it can pack
        self._max_id = 0  # an id above it is new: no search of the packed ids
        self._jti: dict[str, int] = {}  # jti -> count of (unpacked) entries naming it
        self._kid: dict[str, int] = {}
        # cut-off kind -> value -> the ids naming it: one int, or a tuple when several (a set costs 200 bytes)
        self._by_value: dict[str, dict[str, int | tuple[int, ...]]] = {kind: {} for kind in CUTOFF_CLAIMS}
        self._cutoff: dict[str, dict[str, float]] = {kind: {} for kind in CUTOFF_CLAIMS}
        for entry in entries:
            self._add(entry)

    # -- reading ---------------------------------------------------------------------------------
    def is_denied(self, claims: Mapping[str, Any], kid: str | None = None) -> bool:
        if kid is not None and kid in self._kid:
            return True
        jti = claims.get("jti")
        if isinstance(jti, str) and (jti in self._packed or jti in self._jti):
            return True
        iat = claims.get("iat")
        newer_than = iat if is_time(iat) else -math.inf  # exact: a whole-second iat in the cut-off's second is older
        for kind, claim in CUTOFF_CLAIMS.items():
            table = self._cutoff[kind]
            if not table:
                continue
            value = claims.get(claim)
            if isinstance(value, str):
                cutoff = table.get(value)
                if cutoff is not None and newer_than < cutoff:
                    return True
        return False

    def latest_cutoff(self, claims: Mapping[str, Any]) -> float:
        """The latest ``not_before`` of the cut-offs naming the token's ``sub``, ``sid`` or ``client_id``
        (-inf when none does): one dict lookup per claim, for stamping ``iat`` at issuance."""
        latest = -math.inf
        for kind, claim in CUTOFF_CLAIMS.items():
            value = claims.get(claim)
            if isinstance(value, str):
                latest = max(latest, self._cutoff[kind].get(value, -math.inf))
        return latest

    def entries(self) -> list[DenyEntry]:
        packed = (DenyEntry(i, "jti", jti, exp) for i, jti, exp in self._packed.rows())
        return sorted([*self._by_id.values(), *packed], key=lambda e: e.id)

    def get(self, entry_id: int) -> DenyEntry | None:
        entry = self._by_id.get(entry_id)
        if entry is None and (row := self._packed.find(entry_id)) >= 0:
            return DenyEntry(entry_id, "jti", *self._packed.get(row)[1:])
        return entry

    def __len__(self) -> int:
        return len(self._by_id) + len(self._packed)

    def next_expiry(self) -> float:
        unpacked = min((e.expires_at for e in self._by_id.values()), default=math.inf)
        return min(unpacked, self._packed.next_expiry())

    # -- changing --------------------------------------------------------------------------------
    def add(self, entry: DenyEntry, *, version: int | None = None) -> None:
        with self._lock:
            self._add(entry)
            self.version = max(self.version, entry.id if version is None else version)

    def discard(self, entry_id: int, *, version: int | None = None) -> bool:
        with self._lock:
            found = self._discard(entry_id)
            if version is not None:
                self.version = max(self.version, version)
            return found

    def apply(self, change: DenyChange) -> None:
        if change.entry is not None:
            self.add(change.entry, version=change.version)
        elif change.removed is not None:
            self.discard(change.removed, version=change.version)

    def prune(self, now: float) -> int:
        """Drop entries no live token can match any more."""
        with self._lock:
            gone = [e.id for e in self._by_id.values() if e.expires_at <= now]
            for entry_id in gone:
                self._discard(entry_id)
            return len(gone) + self._packed.prune(now)

    def replace(self, entries: Iterable[DenyEntry], version: int) -> None:
        """Swap in a full snapshot (initial load or resynchronisation)."""
        fresh = DenySet(entries, version)
        with self._lock:
            self._by_id, self._jti, self._kid = fresh._by_id, fresh._jti, fresh._kid
            self._packed, self._max_id = fresh._packed, fresh._max_id
            self._by_value, self._cutoff, self.version = fresh._by_value, fresh._cutoff, version

    def _add(self, entry: DenyEntry) -> None:
        if entry.kind not in KINDS:
            raise ValueError(f"unknown deny kind {entry.kind!r}")
        if entry.id <= self._max_id and (entry.id in self._by_id or self._packed.find(entry.id) >= 0):
            return
        self._max_id = max(self._max_id, entry.id)
        if entry.kind == "jti" and self._packed.packable(entry.value) and math.isfinite(entry.expires_at):
            self._packed.add(entry.id, entry.value, entry.expires_at)
            return
        self._by_id[entry.id] = entry
        if entry.kind == "jti":
            self._jti[entry.value] = self._jti.get(entry.value, 0) + 1
        elif entry.kind == "kid":
            self._kid[entry.value] = self._kid.get(entry.value, 0) + 1
        else:
            table = self._by_value[entry.kind]
            held = table.get(entry.value)
            table[entry.value] = entry.id if held is None else (*_ids(held), entry.id)
            self._recompute(entry.kind, entry.value)

    def _discard(self, entry_id: int) -> bool:
        entry = self._by_id.pop(entry_id, None)
        if entry is None:
            return self._packed.remove(entry_id) is not None
        if entry.kind in ("jti", "kid"):
            table = self._jti if entry.kind == "jti" else self._kid
            left = table.get(entry.value, 1) - 1
            if left > 0:
                table[entry.value] = left
            else:
                table.pop(entry.value, None)
        else:
            naming = self._by_value[entry.kind]
            ids = tuple(i for i in _ids(naming.pop(entry.value, None)) if i != entry_id)
            if ids:
                naming[entry.value] = ids[0] if len(ids) == 1 else ids
            self._recompute(entry.kind, entry.value)
        return True

    def _recompute(self, kind: str, value: str) -> None:
        ids = _ids(self._by_value[kind].get(value))
        if not ids:
            self._cutoff[kind].pop(value, None)
            return
        # A missing not_before on a cut-off kind means "every token": +inf.
        cutoffs = [self._by_id[i].not_before for i in ids]
        self._cutoff[kind][value] = max(math.inf if nb is None else nb for nb in cutoffs)

    def cutoffs(self, kind: str, value: str) -> list[DenyEntry]:
        """The live entries of a cut-off kind naming ``value``."""
        held = self._by_value[kind].get(value) if kind in self._by_value else None
        return [self._by_id[i] for i in sorted(_ids(held)) if i in self._by_id]


def _ids(held: int | tuple[int, ...] | None) -> tuple[int, ...]:
    if held is None:
        return ()
    return (held,) if isinstance(held, int) else held
