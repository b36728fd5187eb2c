"""Argon2id password hashing (OWASP minimum: m=19 MiB, t=2, p=1) with rehash-on-login."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def _return_large_blocks_to_the_os() -> None:
    """Serve allocations >= 1 MiB (each Argon2id call takes 19 MiB) with mmap, so they go back on free.

    Otherwise glibc keeps them in per-thread arenas: measured 385 MiB RSS after 200 verifications from 40
    threads, 16 MiB with this (bench/RESULTS.md). No effect off glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, 1 << 20)


class Passwords:
    def __init__(self, *, time_cost: int = 2, memory_kib: int = 19_456, parallelism: int = 1) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._dummy: str | None = None
        # At most one Argon2id computation per core: more only queue for the CPU and each holds its
        # memory (19 MiB) meanwhile, which glibc keeps afterwards (bench/RESULTS.md: 360-480 MiB workers).
        self._slots = threading.BoundedSemaphore(os.cpu_count() or 1)
        _return_large_blocks_to_the_os()

    @property
    def parameters(self) -> str:
        h = self._hasher
        return f"argon2id m={h.memory_cost} KiB t={h.time_cost} p={h.parallelism}"

    def hash(self, password: str) -> str:
        with self._slots:
            return self._hasher.hash(password)

    def _dummy_hash(self) -> str:
        # Verified against for unknown users so that both paths cost one Argon2id verification.
        # Made on first use, not at start-up (it costs one hash).
        if self._dummy is None:
            self._dummy = self._hasher.hash("dummy password for unknown users")
        return self._dummy

    def verify(self, stored: str | None, password: str) -> bool:
        target = stored or self._dummy_hash()
        try:
            with self._slots:
                return self._hasher.verify(target, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)
