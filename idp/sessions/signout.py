"""What ending sessions does beyond deleting their records: refresh grants and live access tokens.

The grant store (idp.tokens.refresh) and the deny-list (idp.denylist) are
reached through the Protocols in idp.interaction, looked up at call time so that
the wiring order of the container does not matter and either may be absent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from idp.interaction import DenyWriter, GrantRevoker
from idp.sessions.store import LoginSession

log = logging.getLogger("idp.sessions")


class AuditSink(Protocol):
    def record(self, action: str, *, actor: str = ..., subject: str | None = ..., **detail: Any) -> None: ...


class SignOut:
    def __init__(
        self,
        grants: Callable[[], GrantRevoker | None],
        denylist: Callable[[], DenyWriter | None],
        audit: AuditSink,
        *,
        keep_offline: bool,
    ) -> None:
        self._grants = grants
        self._denylist = denylist
        self._audit = audit
        self.keep_offline = keep_offline

    def sessions_ended(self, sessions: list[LoginSession], actor: str, reason: str) -> None:
        """The LoginSessions end hook: refresh tokens bound to each session die (offline ones by config)."""
        grants, denylist = self._grants(), self._denylist()
        for s in sessions:
            if grants is not None:
                grants.revoke_for_session(s.sid, keep_offline=self.keep_offline, actor=actor, reason=reason)
            if denylist is not None:
                denylist.deny("session", s.sid, reason=reason, actor=actor)
            self._audit.record("session.ended", actor=actor, subject=s.user_id, sid=s.sid, reason=reason)

    def everything_for_user(self, user_id: str, *, actor: str, reason: str) -> None:
        """Every refresh token of the user, and every access token issued to them until now."""
        self.refresh_tokens_for_user(user_id, actor=actor, reason=reason)
        denylist = self._denylist()
        if denylist is not None:
            denylist.deny("subject", user_id, reason=reason, actor=actor)

    def refresh_tokens_for_user(self, user_id: str, *, actor: str, reason: str, client_id: str | None = None) -> int:
        grants = self._grants()
        if grants is None:
            log.warning("no grant store wired: refresh tokens of %s not revoked (%s)", user_id, reason)
            return 0
        return grants.revoke_for_user(user_id, actor=actor, reason=reason, client_id=client_id)
