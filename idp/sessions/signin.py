"""Signing in with a username and password: throttle, verify, start the session, resume, audit.

A person with a second factor (or whom the policy requires to enrol one) is not signed in by the password:
:meth:`SignIn.attempt` answers :class:`SecondFactor` with a :mod:`idp.sessions.second_step` token, and
:meth:`SignIn.second_factor` (a code) or :meth:`SignIn.enrolled` (a first TOTP code at a grace enrolment)
starts the session with both methods in its ``amr``.

:meth:`SignIn.attempt` blocks (Argon2id, SQL, the shared store): run it in one worker thread, so the
event loop stays free and the whole attempt costs one thread hop. The reservation comes before the
verification (NIST SP 800-63B §5.2.2), so simultaneous attempts cannot verify more passwords than the
throttle admits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from idp.clock import Clock
from idp.interaction import Interactions, PendingAuthorization
from idp.sessions.factors.service import Factors, Rejected, Throttled, Verified
from idp.sessions.second_step import SecondStep, SecondSteps
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


@dataclass(frozen=True)
class SecondFactor:
    """The password was right; the sign-in continues with a second factor (or enrolling one when ``step.enrol``)."""

    token: str
    """For the second step's cookie."""
    step: SecondStep


@dataclass(frozen=True)
class Expired:
    """No second step behind this token (never started, taken, or older than its TTL)."""


Outcome = SignedIn | Refused | Locked | SecondFactor


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
        factors: Factors,
        second_steps: SecondSteps,
        clock: Clock,
    ) -> None:
        self._throttle = throttle
        self._directory = directory
        self._sessions = sessions
        self._interactions = interactions
        self._audit = audit
        self._factors = factors
        self._steps = second_steps
        self._clock = clock

    def attempt(
        self,
        username: str,
        password: str,
        browser: Browser,
        pending: PendingAuthorization | None = None,
        next_path: str = "",
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
        used = [("pwd", self._clock.now())]
        has_factor = self._factors.has_second_factor(user.id)
        if has_factor or self._factors.required_for(user.flags):
            token, step = self._steps.start(
                user.id, used, interaction=pending.id if pending else "", next_path=next_path, enrol=not has_factor
            )
            return SecondFactor(token, step)
        return self._finish(user.id, used, browser, pending)

    def second_factor(
        self, token: str | None, code: str, browser: Browser, pending: PendingAuthorization | None = None
    ) -> SignedIn | Rejected | Throttled | Expired:
        """The second step: a TOTP or recovery code for the person the password step named."""
        step = self._steps.get(token)
        if step is None or step.enrol or not self._enabled(step.user_id):
            return Expired()
        outcome = self._factors.verify(step.user_id, code, ip=browser.ip)
        if not isinstance(outcome, Verified):
            return outcome
        taken = self._steps.finish(token)  # once: one password step, at most one session
        if taken is None:
            return Expired()
        return self._finish(taken.user_id, [*taken.factors, (outcome.amr, self._clock.now())], browser, pending)

    def enrolled(
        self, token: str | None, code: str, browser: Browser, pending: PendingAuthorization | None = None
    ) -> SignedIn | Expired:
        """A grace enrolment's first code was right (:meth:`Factors.confirm_totp` raised otherwise)."""
        taken = self._steps.finish(token)
        if taken is None or not taken.enrol or not self._enabled(taken.user_id):
            return Expired()
        return self._finish(taken.user_id, [*taken.factors, ("otp", self._clock.now())], browser, pending)

    def passkey(
        self, user_id: str, methods: Sequence[str], browser: Browser, pending: PendingAuthorization | None = None
    ) -> SignedIn | Refused:
        """Passwordless: a verified passkey assertion (:meth:`idp.sessions.passkeys.Passkeys.authenticate`, user
        verification required) signs its person in alone: ``hwk``/``swk`` + ``user`` are two factors."""
        if not self._enabled(user_id):
            self._audit.record("login.failed", ip=browser.ip, method="passkey")
            return Refused()
        now = self._clock.now()
        return self._finish(user_id, [(m, now) for m in methods], browser, pending)

    def second_factor_passkey(
        self, token: str | None, methods: Sequence[str], browser: Browser, pending: PendingAuthorization | None = None
    ) -> SignedIn | Expired:
        """The second step passed with a passkey of the person the password step named (the ceremony was theirs:
        ``Passkeys.authentication_options(user_id=...)``)."""
        taken = self._steps.finish(token)  # once: one password step, at most one session
        if taken is None or taken.enrol or not self._enabled(taken.user_id):
            return Expired()
        now = self._clock.now()
        return self._finish(taken.user_id, [*taken.factors, *((m, now) for m in methods)], browser, pending)

    def _enabled(self, user_id: str) -> bool:
        """Disabled between the two steps: the second one finishes nothing."""
        user = self._directory.store.get(user_id)
        return user is not None and not user.disabled

    def _finish(
        self, user_id: str, factors: list[tuple[str, float]], browser: Browser, pending: PendingAuthorization | None
    ) -> SignedIn:
        cookie, session = self._sessions.login(
            user_id, factors=factors, user_agent=browser.user_agent, ip=browser.ip,
            previous_cookie=browser.previous_cookie,
        )  # fmt: skip
        if pending is not None:
            pending.login_sid = session.sid
            pending.login_at = session.auth_time
            self._interactions.save(pending)
        self._audit.record("login", actor=user_id, subject=user_id, ip=browser.ip, sid=session.sid,
                           amr=list(session.amr))  # fmt: skip
        return SignedIn(cookie, session)
