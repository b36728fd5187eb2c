"""Remembered consent: which scopes a person granted to which client (ASVS V10.7.1-V10.7.3).

One record per user and client; granting again merges the scopes, so a client
that asks for fewer or the same scopes later is not asked again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from idp.clock import Clock


@dataclass(frozen=True)
class Consent:
    user_id: str
    client_id: str
    scopes: tuple[str, ...]
    created_at: float
    updated_at: float


class ConsentStore(Protocol):
    def get(self, user_id: str, client_id: str) -> Consent | None: ...

    def put(self, consent: Consent) -> None:
        """Insert or replace the record for (user, client)."""
        ...

    def delete(self, user_id: str, client_id: str) -> bool: ...

    def list_for_user(self, user_id: str) -> list[Consent]: ...


class Consents:
    """Implements :class:`idp.interaction.ConsentReader` plus grant/revoke/list."""

    def __init__(self, store: ConsentStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def covers(self, user_id: str, client_id: str, scopes: Iterable[str]) -> bool:
        consent = self._store.get(user_id, client_id)
        return consent is not None and set(scopes) <= set(consent.scopes)

    def grant(self, user_id: str, client_id: str, scopes: Iterable[str]) -> Consent:
        now = self._clock.now()
        old = self._store.get(user_id, client_id)
        merged = tuple(dict.fromkeys([*(old.scopes if old else ()), *scopes]))
        consent = Consent(user_id, client_id, merged, old.created_at if old else now, now)
        self._store.put(consent)
        return consent

    def revoke(self, user_id: str, client_id: str) -> bool:
        return self._store.delete(user_id, client_id)

    def list_for_user(self, user_id: str) -> list[Consent]:
        return sorted(self._store.list_for_user(user_id), key=lambda c: c.updated_at, reverse=True)
