"""An operator's deny-list entry, the same from the CLI and the admin API.

Denying a subject means "every token of the user": its refresh-token families are revoked too,
not only its access tokens. The deny-list service writes the entry's audit row; the grant store
writes the revocations'.
"""

from __future__ import annotations

from typing import Protocol

from idp.denylist.entries import DenyEntry


class EntryWriter(Protocol):
    """idp.denylist.service.DenyList."""

    def deny(self, kind: str, value: str, *, reason: str, actor: str, until: float | None = None) -> DenyEntry: ...


class UserGrants(Protocol):
    """The refresh-token families (idp.tokens.refresh.RefreshTokens)."""

    def revoke_for_user(self, user_id: str, *, actor: str, reason: str) -> int: ...


class DenyAdmin:
    def __init__(self, denylist: EntryWriter, grants: UserGrants) -> None:
        self._denylist = denylist
        self._grants = grants

    def deny(self, kind: str, value: str, *, reason: str, actor: str, until: float | None = None) -> DenyEntry:
        """Raises ValueError for an unknown kind or a value the kind refuses."""
        entry = self._denylist.deny(kind, value, reason=reason, actor=actor, until=until)
        if kind == "subject":
            self._grants.revoke_for_user(value, actor=actor, reason=reason)
        return entry
