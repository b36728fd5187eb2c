"""Argon2id password hashing (OWASP minimum: m=19 MiB, t=2, p=1) with rehash-on-login.

Verification is the hot path of every sign-in. Each Argon2id run needs ``m`` KiB of work
memory; argon2-cffi's ``verify`` takes it from malloc, which (with the mallopt below) means a
fresh 19 MiB mmap per call: thousands of page faults, and system time on top of the hash's own
(bench/RESULTS.md). :class:`WorkAreas` lends each verification one of ``cpu_count``
pre-sized areas instead, handed to the reference implementation through its allocator
callbacks, so a busy worker faults nothing; an area idle for ``IDLE_RELEASE`` seconds gives
its pages back to the OS, so an idle worker holds no Argon2 memory.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ctypes
import hmac
import mmap
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.low_level import core, ffi, lib

_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
IDLE_RELEASE = 1.0  # seconds an Argon2 work area stays resident after its last use
BLOCK = 1024  # bytes per Argon2 memory block
# The only encoding the fast path reads (what this class writes); anything else goes to argon2-cffi.
_ENCODED = re.compile(
    r"\$argon2id\$v=19\$m=([1-9]\d{0,7}),t=([1-9]\d{0,3}),p=([1-9]\d{0,2})\$([A-Za-z0-9+/]{11,64})\$([A-Za-z0-9+/]{6,128})"
)


def _return_large_blocks_to_the_os() -> None:
    """Serve allocations >= 1 MiB with mmap, so they go back on free (hashing, unusual hashes).

    Otherwise glibc keeps them in per-thread arenas, and a worker's RSS grows with every thread that ever
    verified (bench/RESULTS.md). No effect off glibc. Verifications of this class's
    own hashes do not use malloc (WorkAreas).
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, 1 << 20)


def _b64decode(text: str) -> bytes | None:
    """Unpadded standard base64 as Argon2 writes it; None unless ``text`` is its canonical form."""
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).rstrip(b"=").decode() == text else None


def _unmatchable(memory_kib: int, time_cost: int, parallelism: int) -> str:
    """An encoded Argon2id hash at these parameters that no password matches: random salt and digest.

    Unknown users are verified against it, so both paths cost one verification. It costs no hash to
    make (a hash made on first use cost the first unknown-user attempt of each worker a second run).
    """
    salt, digest = (base64.b64encode(secrets.token_bytes(n)).rstrip(b"=").decode() for n in (16, 32))
    return f"$argon2id$v=19$m={memory_kib},t={time_cost},p={parallelism}${salt}${digest}"


class _Area:
    """One page-aligned anonymous mapping, lent to ``argon2_ctx`` as its work memory."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self._map = mmap.mmap(-1, nbytes)  # outside malloc's arenas; no RSS until touched
        self._buffer = ffi.from_buffer(self._map)  # held: the mapping stays exported, so it cannot move or close
        self._ptr = ffi.cast("uint8_t *", self._buffer)
        error = lib.ARGON2_MEMORY_ALLOCATION_ERROR
        self.allocate = ffi.callback("int(uint8_t **, size_t)", self._allocate, error=error)
        self.free = ffi.callback("void(uint8_t *, size_t)", self._free)
        self.resident = False
        self.last_used = 0.0

    def _allocate(self, memory: Any, size: int) -> int:
        if size > self.nbytes:  # a hash with more memory than configured: the caller falls back
            return int(lib.ARGON2_MEMORY_ALLOCATION_ERROR)
        memory[0] = self._ptr
        self.resident = True
        return int(lib.ARGON2_OK)

    def _free(self, memory: Any, size: int) -> None:
        """Nothing to free: argon2 has already wiped the blocks (clear_internal_memory)."""

    def release_pages(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # no madvise (Windows): the area stays resident
            self._map.madvise(mmap.MADV_DONTNEED)  # the next use starts from fresh zero pages
            self.resident = False


class WorkAreas:
    """``count`` Argon2 work areas: at most ``count`` computations at once (one per core; more only queue
    for the CPU while each holds its memory). The most recently used area is lent first (it is resident)."""

    def __init__(self, count: int, nbytes: int, *, idle_release: float = IDLE_RELEASE) -> None:
        self._count = count
        self._nbytes = nbytes
        self._idle = idle_release
        self._free: list[_Area | None] = [None] * count  # created on first use
        self._cond = threading.Condition()
        self._reaping = False
        self._usable = True

    @contextlib.contextmanager
    def lend(self) -> Iterator[_Area | None]:
        """A slot, with its area; None when areas cannot be made here (the caller lets the library allocate)."""
        with self._cond:
            while not self._free:
                self._cond.wait()
            area = self._free.pop()
        try:
            if area is None and self._usable:
                try:
                    area = _Area(self._nbytes)
                except (MemoryError, OSError, RuntimeError):  # e.g. no executable memory for callbacks
                    self._usable = False
            yield area
        finally:
            with self._cond:
                self._free.append(area)
                self._cond.notify()
                start = area is not None and not self._reaping
                if area is not None:
                    area.last_used = time.monotonic()
                    self._reaping = True
            if start:
                self._reap_in(self._idle)

    def resident(self) -> int:
        """Areas currently holding memory (tests, diagnostics)."""
        with self._cond:
            return sum(1 for a in self._areas() if a.resident)

    def _areas(self) -> list[_Area]:
        return [a for a in self._free if a is not None]

    def _reap_in(self, seconds: float) -> None:
        timer = threading.Timer(seconds, self._reap)
        timer.daemon = True
        timer.start()

    def _reap(self) -> None:
        """Release areas idle for ``idle_release`` seconds; come back while any area is in use or resident."""
        with self._cond:
            now = time.monotonic()
            for area in self._areas():
                if area.resident and now - area.last_used >= self._idle:
                    area.release_pages()
            waits = [a.last_used + self._idle - now for a in self._areas() if a.resident]
            if len(self._free) < self._count:  # lent out: look again after its release
                waits.append(self._idle)
            self._reaping = bool(waits)
        if waits:
            self._reap_in(max(min(waits), 0.01))


class Passwords:
    def __init__(self, *, time_cost: int = 2, memory_kib: int = 19_456, parallelism: int = 1) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._dummy = _unmatchable(memory_kib, time_cost, parallelism)
        self._areas = WorkAreas(os.cpu_count() or 1, memory_kib * BLOCK)
        _return_large_blocks_to_the_os()

    @property
    def parameters(self) -> str:
        h = self._hasher
        return f"argon2id m={h.memory_cost} KiB t={h.time_cost} p={h.parallelism}"

    def hash(self, password: str) -> str:
        with self._areas.lend():  # bounds concurrent computations; the library allocates its own memory
            return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        target = stored or self._dummy  # unknown users cost the same one verification
        secret = password.encode("utf-8")  # as argon2-cffi encodes it
        try:
            with self._areas.lend() as area:
                matched = self._verify_in(area, target, secret) if area is not None else None
                if matched is None:  # not our encoding, or more memory than an area: the library decides
                    matched = self._hasher.verify(target, secret)
            return matched and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    @staticmethod
    def _verify_in(area: _Area, encoded: str, secret: bytes) -> bool | None:
        """Argon2id v1.3 in ``area`` (argon2_ctx with allocator callbacks); None when it cannot run there."""
        found = _ENCODED.fullmatch(encoded)
        if found is None:
            return None
        m, t, p = (int(found.group(i)) for i in (1, 2, 3))
        salt, expected = _b64decode(found.group(4)), _b64decode(found.group(5))
        if salt is None or expected is None:
            return None
        out = ffi.new("uint8_t[]", len(expected))
        # The password and salt are read in place, not copied (argon2 only reads them without CLEAR flags).
        keep = [ffi.from_buffer("uint8_t[]", secret), ffi.from_buffer("uint8_t[]", salt)]
        ctx = ffi.new(
            "argon2_context *",
            {
                "out": out, "outlen": len(expected), "pwd": keep[0], "pwdlen": len(secret),
                "salt": keep[1], "saltlen": len(salt), "secret": ffi.NULL, "secretlen": 0, "ad": ffi.NULL,
                "adlen": 0, "t_cost": t, "m_cost": m, "lanes": p, "threads": p, "version": lib.ARGON2_VERSION_13,
                "allocate_cbk": area.allocate, "free_cbk": area.free, "flags": lib.ARGON2_DEFAULT_FLAGS,
            },
        )  # fmt: skip
        if core(ctx, Type.ID.value) != lib.ARGON2_OK:  # inputs are checked before any work is done
            return None
        return hmac.compare_digest(bytes(ffi.buffer(out, len(expected))), expected)

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)
