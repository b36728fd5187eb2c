"""An operator's deny-list entry, the same from the CLI and the admin API.

Denying a subject means "every token of the user": its refresh-token families are revoked too,
not only its access tokens, and its login sessions end (so the web apps it signed into hear of it
through back-channel logout). The deny-list service writes the entry's audit row; the grant store
writes the revocations'.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from idp.denylist.entries import DenyEntry


class EntryWriter(Protocol):
    """idp.denylist.service.DenyList."""

    def deny(self, kind: str, value: str, *, reason: str, actor: str, until: float | None = None) -> DenyEntry: ...


class UserGrants(Protocol):
    """The refresh-token families (idp.tokens.refresh.RefreshTokens)."""

    def revoke_for_user(self, user_id: str, *, actor: str, reason: str) -> int: ...


EndSessions = Callable[[str, str, str], int]  # (user_id, actor, reason) -> sessions ended


class DenyAdmin:
    def __init__(self, denylist: EntryWriter, grants: UserGrants, *, end_sessions: EndSessions | None = None) -> None:
        self._denylist = denylist
        self._grants = grants
        self._end_sessions = end_sessions

    def deny(self, kind: str, value: str, *, reason: str, actor: str, until: float | None = None) -> DenyEntry:
        """Raises ValueError for an unknown kind or a value the kind refuses."""
        entry = self._denylist.deny(kind, value, reason=reason, actor=actor, until=until)
        if kind == "subject":
            if self._end_sessions is not None:
                self._end_sessions(value, actor, reason)
            self._grants.revoke_for_user(value, actor=actor, reason=reason)
        return entry
