"""What an operator does to a user, the same from the CLI and the admin API, each step audited.

Ending a person's sessions and tokens belongs to idp.sessions; it arrives here as a callable
(``sign_out_everywhere(user_id, actor, reason) -> sessions ended``), so this package does not
import the session room; disabling publishes :class:`idp.events.UserDisabled`, whose subscribers
end the account's sessions, grants and live tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from idp.events import Events, UserDisabled
from idp.users.directory import Directory, User, UserError

SignOutEverywhere = Callable[[str, str, str], int]  # (user_id, actor, reason) -> sessions ended
ResetFactors = Callable[[str, str, str], int]  # (user_id, actor, reason) -> factors removed (audited there)


class Audit(Protocol):
    def record(self, action: str, *, actor: str = ..., subject: str | None = ..., **detail: Any) -> None: ...


class UserAdmin:
    def __init__(
        self,
        directory: Directory,
        audit: Audit,
        *,
        sign_out_everywhere: SignOutEverywhere,
        events: Events,
        reset_factors: ResetFactors | None = None,
    ) -> None:
        self.directory = directory
        self._audit = audit
        self._sign_out_everywhere = sign_out_everywhere
        self._events = events
        self._reset_factors = reset_factors

    def create(
        self, username: str, password: str, *, actor: str, email: str | None = None, name: str | None = None
    ) -> User:
        """Raises UserError for a bad or taken username or a password the policy refuses."""
        user = self.directory.create(username, password, email=email, name=name)
        self._audit.record("user.created", actor=actor, subject=user.id)
        return user

    def set_disabled(self, username: str, disabled: bool, *, actor: str) -> User:
        """Disabling publishes UserDisabled: the account keeps no session, grant or live token."""
        user = self.directory.set_disabled(username, disabled)
        if disabled:
            self._events.publish(UserDisabled(user.id, actor))
        self._audit.record("user.disabled" if disabled else "user.enabled", actor=actor, subject=user.id)
        return user

    def reset_password(self, user: User, password: str, *, actor: str, sign_out: bool, reason: str) -> int:
        """A new password (idp.users.password_policy); with ``sign_out`` (a reset usually means the old password
        is known to someone else) every session and token ends. Returns the sessions ended."""
        user = self.directory.set_password(user, password)
        ended = self._sign_out_everywhere(user.id, actor, reason) if sign_out else 0
        self._audit.record("user.password_reset", actor=actor, subject=user.id, signed_out=sign_out)
        return ended

    def reset_factors(self, user: User, *, actor: str, sign_out: bool, reason: str) -> tuple[int, int]:
        """Remove every second factor and recovery code (a lost phone); with ``sign_out`` every session and token
        ends as well, as after a password reset. The next sign-in asks for no code, or enrols one when the
        policy requires it. Returns (factors removed, sessions ended)."""
        if self._reset_factors is None:
            raise UserError("second factors are not available")
        removed = self._reset_factors(user.id, actor, reason)
        ended = self._sign_out_everywhere(user.id, actor, reason) if sign_out else 0
        return removed, ended

    def set_flags(self, user: User, flags: list[str], *, actor: str) -> User:
        """Replace the user's flags (the ``flagged`` second-factor policy reads them)."""
        before = list(user.flags)
        user = self.directory.set_flags(user, flags)
        self._audit.record("user.flags_changed", actor=actor, subject=user.id, before=before, after=user.flags)
        return user
