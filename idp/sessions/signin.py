"""Signing in with a username and password: throttle, verify, start the session, resume, audit.

:meth:`SignIn.attempt` blocks (Argon2id, SQL, the shared store): run it in one worker thread, so the
event loop stays free and the whole attempt costs one thread hop. The reservation comes before the
verification (NIST SP 800-63B §5.2.2), so simultaneous attempts cannot verify more passwords than the
throttle admits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from idp.interaction import Interactions, PendingAuthorization
from idp.sessions.store import LoginSession, LoginSessions
from idp.users.directory import Directory
from idp.users.throttle import LoginThrottle


class Audit(Protocol):
    def record(self, action: str, *, actor: str = ..., subject: str | None = ..., **detail: Any) -> None: ...


@dataclass(frozen=True)
class SignedIn:
    cookie: str
    """The new session cookie's value (a fresh id at every sign-in)."""
    session: LoginSession


@dataclass(frozen=True)
class Refused:
    """Unknown user, wrong password or disabled account: one answer for all three."""


@dataclass(frozen=True)
class Locked:
    """Too many attempts for the account or the address: refused unverified, or this failure locked it."""

    retry_after: int


Outcome = SignedIn | Refused | Locked


@dataclass(frozen=True)
class Browser:
    """What the sign-in learns from the request it came with."""

    ip: str
    user_agent: str
    previous_cookie: str | None  # the session cookie the browser sent, replaced by the new one


class SignIn:
    def __init__(
        self,
        *,
        throttle: LoginThrottle,
        directory: Directory,
        sessions: LoginSessions,
        interactions: Interactions,
        audit: Audit,
    ) -> None:
        self._throttle = throttle
        self._directory = directory
        self._sessions = sessions
        self._interactions = interactions
        self._audit = audit

    def attempt(
        self, username: str, password: str, browser: Browser, pending: PendingAuthorization | None = None
    ) -> Outcome:
        """Sign in; on success the parked authorization ``pending`` (if any) records the new session."""
        reserved = self._throttle.begin(username, browser.ip)  # NIST SP 800-63B §5.2.2: reserved before verifying
        if isinstance(reserved, int):
            return Locked(reserved)
        user = self._directory.authenticate(username, password)
        if user is None:
            retry = reserved.failure()
            self._audit.record("login.failed", ip=browser.ip)
            return Refused() if retry is None else Locked(retry)
        reserved.success()
        cookie, session = self._sessions.login(
            user.id, amr=("pwd",), user_agent=browser.user_agent, ip=browser.ip,
            previous_cookie=browser.previous_cookie,
        )  # fmt: skip
        if pending is not None:
            pending.login_sid = session.sid
            pending.login_at = session.auth_time
            self._interactions.save(pending)
        self._audit.record("login", actor=user.id, subject=user.id, ip=browser.ip, sid=session.sid)
        return SignedIn(cookie, session)
