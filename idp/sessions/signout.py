"""What ending sessions does beyond deleting their records: refresh grants and live access tokens.

The grant store (idp.tokens.refresh) and the deny-list (idp.denylist) are reached
through the Protocols in idp.interaction; :meth:`SignOut.sessions_ended` handles
:class:`idp.events.SessionsEnded`.
"""

from __future__ import annotations

from typing import Any, Protocol

from idp.events import SessionsEnded
from idp.interaction import DenyWriter, GrantRevoker


class AuditSink(Protocol):
    def record(self, action: str, *, actor: str = ..., subject: str | None = ..., **detail: Any) -> None: ...


class SignOut:
    def __init__(self, grants: GrantRevoker, denylist: DenyWriter, audit: AuditSink, *, keep_offline: bool) -> None:
        self._grants = grants
        self._denylist = denylist
        self._audit = audit
        self.keep_offline = keep_offline

    def sessions_ended(self, event: SessionsEnded) -> None:
        """Refresh tokens bound to each ended session die (offline ones by config), and its access tokens."""
        actor, reason = event.actor, event.reason
        for s in event.sessions:
            self._grants.revoke_for_session(s.sid, keep_offline=self.keep_offline, actor=actor, reason=reason)
            self._denylist.deny("session", s.sid, reason=reason, actor=actor)
            self._audit.record("session.ended", actor=actor, subject=s.user_id, sid=s.sid, reason=reason)

    def everything_for_user(self, user_id: str, *, actor: str, reason: str) -> None:
        """Every refresh token of the user, and every access token issued to them until now."""
        self.refresh_tokens_for_user(user_id, actor=actor, reason=reason)
        self._denylist.deny("subject", user_id, reason=reason, actor=actor)

    def refresh_tokens_for_user(self, user_id: str, *, actor: str, reason: str, client_id: str | None = None) -> int:
        return self._grants.revoke_for_user(user_id, actor=actor, reason=reason, client_id=client_id)
