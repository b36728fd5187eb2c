"""The ``jti`` entries of a deny-list, packed: ~50 bytes per entry instead of a Python object each.

A resource server mirrors every live ``jti`` entry (one per revoked access token); at a
million entries a dict of :class:`~idp.denylist.entries.DenyEntry` objects costs ~400 bytes
each. Here an entry is one row of fixed-width arrays (CPython's compact-dict layout):

* ``_keys``: the ``jti`` itself, ASCII, NUL-padded to :data:`KEY_BYTES` (idp's are 12
  characters); a ``jti`` that is longer, not ASCII or holds a NUL is not packed (the
  caller keeps it elsewhere, :meth:`JtiTable.packable`);
* ``_hashes``: the string's ``hash()``, so a probe compares the key bytes only when the
  whole 64-bit hash already matches (a miss never builds a bytes object);
* ``_ids`` (8-byte little-endian, searched with ``bytearray.find`` to remove by id) and
  ``_expires`` (float seconds, exact: the IdP serves them back in its snapshot);
* ``_index``: an open-addressing table (linear probing, at most a quarter full) of row numbers.

A lookup is one ``hash()`` and a probe or two whatever the size (flat). Several rows may
carry the same ``jti`` (two entries naming it): a lookup finds any live one. Removed rows
are marked dead and skipped; the arrays are rebuilt without them once they are half dead.
``hash()`` is per process (salted), which is all an in-memory table needs. Not thread-safe
for writers; the caller (:class:`~idp.denylist.denyset.DenySet`) serialises them, and a
reader racing a rebuild sees either the old arrays or the new ones (they are swapped in
one assignment).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator

KEY_BYTES = 16
_EMPTY = -1
_TOMBSTONE = -2
_MIN_SLOTS = 8


class _Arrays:
    """One generation of the table: rebuilt whole on growth or compaction, then swapped in."""

    __slots__ = ("expires", "hashes", "ids", "index", "keys", "mask", "used")

    def __init__(self, slots: int) -> None:
        self.index = array("i", [_EMPTY]) * slots
        self.mask = slots - 1
        self.used = 0  # index slots not empty (live rows + tombstones)
        self.keys = bytearray()
        self.hashes = array("q")
        self.ids = bytearray()
        self.expires = array("d")


class JtiTable:
    def __init__(self) -> None:
        self._a = _Arrays(_MIN_SLOTS)
        self._live = 0
        self._soonest = math.inf  # no row expires before it: a prune before then has nothing to scan

    @staticmethod
    def packable(jti: str) -> bool:
        return len(jti) <= KEY_BYTES and jti.isascii() and "\0" not in jti

    def __len__(self) -> int:
        return self._live

    def __contains__(self, jti: object) -> bool:
        if not isinstance(jti, str) or len(jti) > KEY_BYTES:
            return False
        a = self._a
        h = hash(jti)
        i = h & a.mask
        index, hashes = a.index, a.hashes
        while True:
            row = index[i]
            if row == _EMPTY:
                return False
            if row >= 0 and hashes[row] == h and a.keys[row * KEY_BYTES : (row + 1) * KEY_BYTES] == _key(jti):
                return True
            i = (i + 1) & a.mask

    def add(self, entry_id: int, jti: str, expires_at: float) -> None:
        """Add a row; ``jti`` must be :meth:`packable` and ``entry_id`` new (the caller checks both)."""
        a = self._a
        if (a.used + 1) * 4 > len(a.index):
            a = self._rebuild(self._live + 1)
        row = len(a.hashes)
        h = hash(jti)
        a.keys += _key(jti)
        a.hashes.append(h)
        a.ids += entry_id.to_bytes(8, "little", signed=True)
        a.expires.append(expires_at)
        self._soonest = min(self._soonest, expires_at)
        i = h & a.mask
        while a.index[i] >= 0:
            i = (i + 1) & a.mask
        if a.index[i] == _EMPTY:
            a.used += 1
        a.index[i] = row
        self._live += 1

    def find(self, entry_id: int) -> int:
        """The row of the live entry ``entry_id``, or -1."""
        ids, needle, start = self._a.ids, entry_id.to_bytes(8, "little", signed=True), 0
        while (at := ids.find(needle, start)) >= 0:
            if at % 8 == 0:
                return at // 8
            start = at + 1
        return -1

    def get(self, row: int) -> tuple[int, str, float]:
        """(id, jti, expires_at) of a live row."""
        a = self._a
        jti = bytes(a.keys[row * KEY_BYTES : (row + 1) * KEY_BYTES]).rstrip(b"\0").decode()
        return int.from_bytes(a.ids[row * 8 : row * 8 + 8], "little", signed=True), jti, a.expires[row]

    def remove(self, entry_id: int) -> str | None:
        """Drop the entry ``entry_id``; its ``jti``, or None when no live row has that id."""
        row = self.find(entry_id)
        if row < 0:
            return None
        jti = self.get(row)[1]
        self._kill(row)
        self._maybe_compact()
        return jti

    def prune(self, now: float) -> int:
        """Drop every row with ``expires_at <= now``; how many went. One pass over the rows, unless none is due."""
        if now < self._soonest:
            return 0
        expires = self._a.expires
        gone = [row for row, exp in enumerate(expires) if exp <= now]
        for row in gone:
            self._kill(row)
        if gone:
            self._maybe_compact()
        self._soonest = self.next_expiry()
        return len(gone)

    def next_expiry(self) -> float:
        return min(self._a.expires, default=math.inf)

    def rows(self) -> Iterator[tuple[int, str, float]]:
        """(id, jti, expires_at) of every live row."""
        a = self._a
        for row, exp in enumerate(a.expires):
            if exp != math.inf:
                yield self.get(row)

    def nbytes(self) -> int:
        """The buffers' allocated size (what the table costs beyond a few small objects)."""
        a = self._a
        sizes = (a.index, a.hashes, a.expires)
        return sum(x.buffer_info()[1] * x.itemsize for x in sizes) + a.keys.__sizeof__() + a.ids.__sizeof__()

    # -- internals -------------------------------------------------------------------------------
    def _kill(self, row: int) -> None:
        a = self._a
        h = a.hashes[row]
        i = h & a.mask
        while a.index[i] != row:
            i = (i + 1) & a.mask
        a.index[i] = _TOMBSTONE
        a.expires[row] = math.inf  # a dead row: never pruned again, never listed
        a.ids[row * 8 : row * 8 + 8] = b"\xff" * 8  # id -1: never found by id
        self._live -= 1

    def _maybe_compact(self) -> None:
        if len(self._a.hashes) > _MIN_SLOTS and self._live * 2 < len(self._a.hashes):
            self._rebuild(self._live)

    def _rebuild(self, wanted: int) -> _Arrays:
        """New arrays holding the live rows, with room for ``wanted`` rows, the index at most a quarter full."""
        old = self._a
        slots = _MIN_SLOTS
        while slots < wanted * 4 + 4:
            slots *= 2
        new = _Arrays(slots)
        index, mask = new.index, new.mask
        for row, exp in enumerate(old.expires):
            if exp == math.inf:
                continue
            h = old.hashes[row]
            i = h & mask
            while index[i] != _EMPTY:
                i = (i + 1) & mask
            index[i] = len(new.hashes)
            new.keys += old.keys[row * KEY_BYTES : (row + 1) * KEY_BYTES]
            new.hashes.append(h)
            new.ids += old.ids[row * 8 : row * 8 + 8]
            new.expires.append(exp)
        new.used = len(new.hashes)
        self._a = new
        return new


def _key(jti: str) -> bytes:
    return jti.encode().ljust(KEY_BYTES, b"\0")
