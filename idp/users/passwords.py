"""Argon2id password hashing (OWASP minimum: m=19 MiB, t=2, p=1) with rehash-on-login."""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Passwords:
    def __init__(self, *, time_cost: int = 2, memory_kib: int = 19_456, parallelism: int = 1) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        # Verified against for unknown users so that both paths cost one Argon2id verification.
        self._dummy = self._hasher.hash("dummy password for unknown users")

    @property
    def parameters(self) -> str:
        h = self._hasher
        return f"argon2id m={h.memory_cost} KiB t={h.time_cost} p={h.parallelism}"

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)
