"""Remembered consent: which scopes a person granted to which client (ASVS V10.7.1-V10.7.3).

One record per user and client; granting again merges the scopes, so a client
that asks for fewer or the same scopes later is not asked again.

A public client's identity is not proven by its ``client_id`` (RFC 8252 §8.6): any
local program can start a flow for it on its own loopback port or private-use
scheme. For those redirect URIs the person approves each exact URI (port
included) once per login session (:class:`RedirectApprovals`); the remembered
consent alone never lets such a request through.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from idp.clients.model import Client
from idp.clock import Clock
from idp.ephemeral import EphemeralStore
from idp.loopback import is_loopback_host


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


def needs_session_approval(client: Client, redirect_uri: str) -> bool:
    """RFC 8252 §8.6: a public client whose redirect URI does not prove who receives the code.

    ``https`` on a host other than loopback is delivered only to that host's owner (a web origin, or a
    claimed ``https`` redirect, RFC 8252 §7.2); loopback ports and private-use schemes can be opened by any
    program on the device (RFC 8252 §7.1, §7.3). Confidential clients prove themselves at the token endpoint.
    """
    if not client.is_public:
        return False
    parts = urlsplit(redirect_uri)
    return not (parts.scheme == "https" and not is_loopback_host(parts.hostname))


class RedirectApprovals:
    """Per login session, the exact redirect URIs (port included) a person approved for a public client.

    Kept in the ephemeral store until the session's absolute expiry (``session_expiry(sid)``, read when the
    person approves: an approval never outlives its session); the key is a digest of the session id, client
    and URI, so a new session (a new ``sid``) starts with none, and a loopback redirect on a new port is a
    new URI. Losing them (a Redis flush) only means the person is asked again.
    """

    def __init__(self, store: EphemeralStore, clock: Clock, session_expiry: Callable[[str], float | None]) -> None:
        self._store = store
        self._clock = clock
        self._session_expiry = session_expiry

    @staticmethod
    def _key(sid: str, client_id: str, redirect_uri: str) -> str:
        digest = hashlib.sha256("\0".join((sid, client_id, redirect_uri)).encode()).hexdigest()
        return f"redirect-approval:{digest}"

    def approve(self, sid: str, client_id: str, redirect_uri: str) -> None:
        """Remember the approval for the rest of the session's absolute lifetime (nothing once it ended)."""
        until = self._session_expiry(sid)
        ttl = until - self._clock.now() if until is not None else 0.0
        if ttl > 0:
            self._store.put(self._key(sid, client_id, redirect_uri), b"1", ttl)

    def approved(self, sid: str, client_id: str, redirect_uri: str) -> bool:
        return self._store.get(self._key(sid, client_id, redirect_uri)) is not None
