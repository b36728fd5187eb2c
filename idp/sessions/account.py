"""What a signed-in person can do to their own account: sessions, authorized apps, password.

Blocking (Argon2id, SQL): the HTTP layer calls these from a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from idp.clock import Clock
from idp.events import UserDisabled
from idp.sessions.consents import Consents
from idp.sessions.devices import describe
from idp.sessions.signout import AuditSink, SignOut
from idp.sessions.store import LoginSession, LoginSessions
from idp.users.directory import Directory, User, UserError
from idp.users.throttle import LoginThrottle


class PasswordChangeError(Exception):
    """Shown to the person as is; ``retry_after`` is set when throttled."""

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NamedClient(Protocol):
    @property
    def name(self) -> str: ...


class ClientNames(Protocol):
    def get(self, client_id: str) -> NamedClient | None: ...


@dataclass(frozen=True)
class GrantSummary:
    client_id: str
    active: int  # live refresh-token families
    last_granted_at: float


class GrantSummaries(Protocol):
    def for_user(self, user_id: str, now: float) -> list[GrantSummary]:
        """The user's live grants, one per client."""
        ...


@dataclass(frozen=True)
class DeviceView:
    sid: str
    device: str
    ip: str
    last_seen_at: float
    created_at: float
    current: bool


@dataclass(frozen=True)
class AppView:
    client_id: str
    name: str
    scopes: tuple[str, ...]
    since: float
    active_grants: int


class Account:
    def __init__(
        self,
        *,
        sessions: LoginSessions,
        consents: Consents,
        directory: Directory,
        signout: SignOut,
        clients: ClientNames,
        grants: GrantSummaries,
        throttle: LoginThrottle,
        audit: AuditSink,
        clock: Clock,
    ) -> None:
        self.sessions = sessions
        self.consents = consents
        self.directory = directory
        self.signout = signout
        self._clients = clients
        self._grants = grants
        self._throttle = throttle
        self._audit = audit
        self._clock = clock

    def devices(self, user_id: str, current_sid: str) -> list[DeviceView]:
        """This device first, then the others by last activity."""
        views = [
            DeviceView(s.sid, describe(s.user_agent), s.ip, s.last_seen_at, s.created_at, s.sid == current_sid)
            for s in self.sessions.list_for_user(user_id)
        ]
        return sorted(views, key=lambda d: not d.current)

    def apps(self, user_id: str) -> list[AppView]:
        """Clients holding consent or live refresh grants (ASVS V10.7.3: review what was granted)."""
        consents = {c.client_id: c for c in self.consents.list_for_user(user_id)}
        grants = {g.client_id: g for g in self._grants.for_user(user_id, self._clock.now())}
        out = []
        for client_id in dict.fromkeys([*consents, *grants]):
            client = self._clients.get(client_id)
            consent, grant = consents.get(client_id), grants.get(client_id)
            out.append(
                AppView(
                    client_id=client_id,
                    name=client.name if client is not None else client_id,
                    scopes=consent.scopes if consent else (),
                    since=consent.created_at if consent else grants[client_id].last_granted_at,
                    active_grants=grant.active if grant else 0,
                )
            )
        return sorted(out, key=lambda a: a.name.casefold())

    def end_session(self, user_id: str, sid: str) -> bool:
        """Sign out one of the user's sessions (never another user's)."""
        return self.sessions.end_sid(sid, user_id=user_id, actor=user_id, reason="signed out from account page")

    def end_everything(self, user_id: str, actor: str, reason: str) -> int:
        """Every session, every refresh token, and every live access token of the user (a subject cut-off).
        Returns the sessions ended. The one way anything signs a person out everywhere."""
        ended = self.sessions.end_all_for_user(user_id, actor=actor, reason=reason)
        self.signout.everything_for_user(user_id, actor=actor, reason=reason)
        return len(ended)

    def sign_out_everywhere(
        self, user_id: str, *, actor: str | None = None, reason: str = "sign out everywhere"
    ) -> int:
        """:meth:`end_everything`, audited as ``user.signed_out_everywhere``; ``actor`` is the person by default."""
        actor = actor or user_id
        ended = self.end_everything(user_id, actor, reason)
        self._audit.record("user.signed_out_everywhere", actor=actor, subject=user_id, sessions=ended)
        return ended

    def revoke_app(self, user_id: str, client_id: str) -> None:
        """Forget the consent and revoke the client's refresh tokens for this user (ASVS V10.4.9)."""
        self.consents.revoke(user_id, client_id)
        self.signout.refresh_tokens_for_user(
            user_id, actor=user_id, reason="access revoked by user", client_id=client_id
        )
        self._audit.record("consent.revoked", actor=user_id, subject=user_id, client_id=client_id)

    def user_disabled(self, event: UserDisabled) -> None:
        """Handles :class:`idp.events.UserDisabled`: a disabled account keeps no session and no grant."""
        self.end_everything(event.user_id, event.actor, "user disabled")

    def reauthenticate(self, session: LoginSession, password: str, *, ip: str) -> User:
        """The signed-in person proves it again with their password before a sensitive change (password, second
        factors). Throttled like sign-in; raises :class:`PasswordChangeError` with the message to show."""
        user: User | None = self.directory.store.get(session.user_id)
        if user is None or user.disabled:
            raise PasswordChangeError("Your account is not available.")
        attempt = self._throttle.begin(user.username, ip)  # NIST SP 800-63B §5.2.2: reserved before verifying
        if isinstance(attempt, int):
            raise PasswordChangeError("Too many attempts. Please wait and try again.", attempt)
        if not self.directory.passwords.verify(user.password_hash, password[:1024]):
            raise PasswordChangeError("Your current password is not correct.", attempt.failure())
        attempt.success()
        return user

    def change_password(
        self, session: LoginSession, cookie: str, current: str, new: str, confirm: str, *, ip: str
    ) -> tuple[str, LoginSession]:
        """Returns the rotated cookie. Ends the other sessions and revokes the user's refresh tokens."""
        user = self.reauthenticate(session, current, ip=ip)
        if new != confirm:
            raise PasswordChangeError("The new passwords do not match.")
        try:
            self.directory.set_password(user, new)
        except UserError as exc:
            raise PasswordChangeError(str(exc).capitalize() + ".") from None
        self.sessions.end_all_for_user(user.id, actor=user.id, reason="password changed", except_sid=session.sid)
        self.signout.refresh_tokens_for_user(user.id, actor=user.id, reason="password changed")
        rotated = self.sessions.rotate(cookie)  # ASVS V7.2.4: privilege change -> new session id
        if rotated is None:
            raise PasswordChangeError("Your session ended. Please sign in again.")
        self._audit.record("user.password_changed", actor=user.id, subject=user.id, ip=ip)
        return rotated
