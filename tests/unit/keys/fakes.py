"""An in-memory :class:`idp.keys.keyring.KeyStore`, and a keyring over it for the token tests."""

from __future__ import annotations

import copy
from typing import TypeVar

from idp.clock import Clock
from idp.crypto import Sealer
from idp.keys.keyring import KeyChange, KeyPolicy, Keyring, StoredKey

R = TypeVar("R")


class MemoryKeyStore:
    def __init__(self) -> None:
        self.rows: list[StoredKey] = []
        self._version = 0

    def load(self) -> tuple[int, list[StoredKey]]:
        return self._version, [copy.copy(r) for r in self.rows]

    def version(self) -> int:
        return self._version

    def mutate(self, change: KeyChange[R]) -> R:
        rows = [copy.copy(r) for r in self.rows]
        result, dirty = change(rows)
        by_kid = {r.kid: r for r in self.rows}
        for r in dirty:
            by_kid[r.kid] = r
        self.rows = list(by_kid.values())
        self._version += 1
        return result


def keyring(sealer: Sealer, clock: Clock) -> Keyring:
    policy = KeyPolicy(algorithms=("ES256", "RS256", "EdDSA"), rotation_seconds=1e9, publish_lead=60, retire_keep=600)
    ring = Keyring(MemoryKeyStore(), sealer, clock, policy)
    ring.tick()
    return ring
