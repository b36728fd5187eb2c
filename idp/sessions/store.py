"""Login sessions: an opaque cookie value pointing at a server-side record.

The cookie carries 256 random bits; the database keeps only its keyed digest, so
a leaked table cannot be replayed as cookies. ``sid`` is a separate public id
that goes into tokens and logout messages. A new cookie value is issued at every
login and privilege change and the old one stops working at once (no fixation).

Lifetimes (checked against the injected clock): idle ``idle_ttl`` sliding, and an
absolute cap from the last authentication. Sliding writes at most once per
``SLIDE_EVERY`` seconds, so a busy browser does not write on every request.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from idp.clock import Clock
from idp.crypto import Digester, random_id
from idp.events import Events, SessionsEnded
from idp.interaction import SessionInfo
from idp.sessions.assurance import amr_of

COOKIE_BYTES = 32  # 256 bits (ASVS V7.2.3 asks >= 128)
MAX_COOKIE_LEN = 128
SLIDE_EVERY = 60.0


@dataclass(frozen=True)
class LoginSession:
    sid: str
    user_id: str
    auth_time: float
    amr: tuple[str, ...]
    csrf_secret: bytes
    created_at: float
    last_seen_at: float
    idle_expires_at: float
    absolute_expires_at: float
    user_agent: str = ""
    ip: str = ""
    factors: tuple[tuple[str, float], ...] = ()
    """Each authentication method used (an RFC 8176 ``amr`` value) and when it was last used, oldest first."""

    def factor_times(self) -> dict[str, float]:
        return dict(self.factors)

    def info(self) -> SessionInfo:
        return SessionInfo(sid=self.sid, user_id=self.user_id, auth_time=self.auth_time, amr=self.amr)

    def alive(self, now: float) -> bool:
        return now < self.idle_expires_at and now < self.absolute_expires_at


class SessionStore(Protocol):
    """Durable session records keyed by the digest of the cookie value."""

    def insert(self, digest: bytes, session: LoginSession) -> None: ...

    def get(self, digest: bytes) -> LoginSession | None: ...

    def get_by_sid(self, sid: str) -> LoginSession | None: ...

    def update(self, digest: bytes, session: LoginSession, new_digest: bytes | None = None) -> bool:
        """Overwrite the record this ``digest`` still names; with ``new_digest`` the old cookie stops working
        in the same write. False when the digest names nothing (rotated or ended meanwhile): nothing written."""
        ...

    def slide(self, digest: bytes, last_seen_at: float, idle_expires_at: float) -> bool:
        """Move only the sliding columns of the record this ``digest`` still names.

        A concurrent sign-in that rotated the cookie meanwhile is left alone: its CSRF secret,
        ``auth_time`` and ``amr`` are never written back with the values read before it.
        """
        ...

    def delete(self, sids: list[str], *, reason: str = "") -> list[LoginSession]:
        """Delete these sessions; returns the ones that existed. What the end owes the clients each signed
        into (back-channel logout) is written in the same transaction."""
        ...

    def signed_into(self, sid: str, client_id: str, now: float) -> None:
        """Remember that the session signed into this client (whom to tell when it ends); idempotent."""
        ...

    def list_for_user(self, user_id: str) -> list[LoginSession]: ...


class UserLookup(Protocol):
    def get(self, user_id: str) -> object | None:
        """The user (anything with a ``disabled`` attribute) or None."""
        ...


class LoginSessions:
    """Implements :class:`idp.interaction.SessionReader` plus the session life cycle."""

    def __init__(
        self,
        store: SessionStore,
        digester: Digester,
        clock: Clock,
        users: UserLookup,
        *,
        idle_ttl: float,
        absolute_ttl: float,
        events: Events | None = None,
    ) -> None:
        self._store = store
        self._digester = digester
        self._clock = clock
        self._users = users
        self.idle_ttl = idle_ttl
        self.absolute_ttl = absolute_ttl
        self._events = events or Events()

    # -- reading -----------------------------------------------------------------------------
    def _digest(self, cookie_value: str | None) -> bytes | None:
        if not cookie_value or len(cookie_value) > MAX_COOKIE_LEN:
            return None
        return self._digester.digest(cookie_value)

    def current(self, cookie_value: str | None, *, slide: bool = True) -> LoginSession | None:
        """The live session behind this cookie, or None. Expired sessions are deleted. Blocking."""
        digest = self._digest(cookie_value)
        session = self._store.get(digest) if digest else None
        if session is None or digest is None:
            return None
        now = self._clock.now()
        if not session.alive(now):  # ASVS V7.3.1/V7.3.2: idle and absolute timeouts, server-side
            self._end([session.sid], actor="system", reason="expired")
            return None
        user = self._users.get(session.user_id)
        if user is None or getattr(user, "disabled", True):
            self._end([session.sid], actor="system", reason="user disabled")
            return None
        if slide and now - session.last_seen_at >= SLIDE_EVERY:
            idle = min(now + self.idle_ttl, session.absolute_expires_at)
            if self._store.slide(digest, now, idle):  # the sliding columns only, and only if still this cookie's
                session = replace(session, last_seen_at=now, idle_expires_at=idle)
        return session

    def from_cookie(self, cookie_value: str | None) -> SessionInfo | None:
        session = self.current(cookie_value)
        return session.info() if session else None

    def is_active(self, sid: str) -> bool:
        session = self._store.get_by_sid(sid) if sid and len(sid) <= 64 else None
        return session is not None and session.alive(self._clock.now())

    def get_by_sid(self, sid: str) -> LoginSession | None:
        session = self._store.get_by_sid(sid) if sid and len(sid) <= 64 else None
        return session if session is not None and session.alive(self._clock.now()) else None

    def list_for_user(self, user_id: str) -> list[LoginSession]:
        """Live sessions, most recently seen first; expired ones are collected on the way."""
        now = self._clock.now()
        sessions = self._store.list_for_user(user_id)
        dead = [s.sid for s in sessions if not s.alive(now)]
        if dead:
            self._end(dead, actor="system", reason="expired")
        return sorted((s for s in sessions if s.alive(now)), key=lambda s: s.last_seen_at, reverse=True)

    # -- life cycle --------------------------------------------------------------------------
    def login(
        self,
        user_id: str,
        *,
        amr: Iterable[str] = ("pwd",),
        factors: Sequence[tuple[str, float]] | None = None,
        user_agent: str = "",
        ip: str = "",
        previous_cookie: str | None = None,
    ) -> tuple[str, LoginSession]:
        """Start (or re-authenticate) a session; returns the NEW cookie value and the record.

        ``amr`` names the methods used now; ``factors`` instead gives each method with the time it was used
        (a password, then a code). The session's ``amr`` is :func:`idp.sessions.assurance.amr_of` of them.

        ASVS V7.2.4: a new id at every authentication, the old one destroyed. Re-authenticating
        the same user keeps the public ``sid`` (tokens bound to the session stay bound); a
        different user ends the previous session entirely.
        """
        now = self._clock.now()
        used = tuple(factors) if factors is not None else tuple((m, now) for m in amr if m != "mfa")
        previous_digest = self._digest(previous_cookie)
        previous = self.current(previous_cookie, slide=False)
        cookie = secrets.token_urlsafe(COOKIE_BYTES)
        fresh = LoginSession(
            sid=previous.sid if previous and previous.user_id == user_id else random_id(16),
            user_id=user_id,
            auth_time=now,
            amr=amr_of(m for m, _ in used),
            csrf_secret=secrets.token_bytes(32),
            created_at=previous.created_at if previous and previous.user_id == user_id else now,
            last_seen_at=now,
            idle_expires_at=now + min(self.idle_ttl, self.absolute_ttl),
            absolute_expires_at=now + self.absolute_ttl,
            user_agent=user_agent[:300],
            ip=ip[:64],
            factors=_merge((), used),
        )
        digest = self._digester.digest(cookie)
        if previous is not None and previous.user_id == user_id and previous_digest is not None:
            if self._store.update(previous_digest, fresh, new_digest=digest):
                return cookie, fresh
            # A concurrent sign-in rotated that cookie first: this one starts a session of its own.
            fresh = replace(fresh, sid=random_id(16), created_at=now)
        elif previous is not None:
            self._end([previous.sid], actor=previous.user_id, reason="another user signed in")
        self._store.insert(digest, fresh)
        return cookie, fresh

    def rotate(self, cookie_value: str) -> tuple[str, LoginSession] | None:
        """Privilege change (password change): new cookie value and CSRF secret, same ``sid``."""
        session = self.current(cookie_value, slide=False)
        digest = self._digest(cookie_value)
        if session is None or digest is None:
            return None
        cookie = secrets.token_urlsafe(COOKIE_BYTES)
        session = replace(session, csrf_secret=secrets.token_bytes(32), last_seen_at=self._clock.now())
        if not self._store.update(digest, session, new_digest=self._digester.digest(cookie)):  # ASVS V7.2.4
            return None  # rotated or ended meanwhile
        return cookie, session

    def add_factor(self, cookie_value: str, method: str) -> tuple[str, LoginSession] | None:
        """Step-up: the session's person passed another method (``otp``) now. A new cookie value and CSRF secret
        (ASVS V7.2.4: privilege change), the same ``sid``; ``amr`` gains the method and ``auth_time`` moves to now
        (the last active authentication, as RFC 9470 §3 ``max_age`` counts it). None when the session ended."""
        session = self.current(cookie_value, slide=False)
        digest = self._digest(cookie_value)
        if session is None or digest is None:
            return None
        now = self._clock.now()
        factors = _merge(session.factors, ((method, now),))
        cookie = secrets.token_urlsafe(COOKIE_BYTES)
        session = replace(
            session, factors=factors, amr=amr_of((*session.amr, method)), auth_time=now, last_seen_at=now,
            csrf_secret=secrets.token_bytes(32),
        )  # fmt: skip
        if not self._store.update(digest, session, new_digest=self._digester.digest(cookie)):
            return None  # rotated or ended meanwhile
        return cookie, session

    def end(self, cookie_value: str | None, *, actor: str, reason: str) -> LoginSession | None:
        """Logout: delete the record (not just the cookie)."""
        digest = self._digest(cookie_value)
        session = self._store.get(digest) if digest else None
        if session is None:
            return None
        ended = self._end([session.sid], actor=actor, reason=reason)
        return ended[0] if ended else None

    def end_sid(self, sid: str, *, user_id: str | None = None, actor: str, reason: str) -> bool:
        """End one session by public id; with ``user_id`` only if it belongs to that user."""
        session = self._store.get_by_sid(sid) if sid and len(sid) <= 64 else None
        if session is None or (user_id is not None and session.user_id != user_id):
            return False
        return bool(self._end([sid], actor=actor, reason=reason))

    def end_all_for_user(
        self, user_id: str, *, actor: str, reason: str, except_sid: str | None = None
    ) -> list[LoginSession]:
        sids = [s.sid for s in self._store.list_for_user(user_id) if s.sid != except_sid]
        return self._end(sids, actor=actor, reason=reason) if sids else []

    def signed_into(self, sid: str, client_id: str) -> None:
        """The session signed into a client that registered for back-channel logout. Blocking."""
        if sid and len(sid) <= 64:
            self._store.signed_into(sid, client_id, self._clock.now())

    def _end(self, sids: list[str], *, actor: str, reason: str) -> list[LoginSession]:
        ended = self._store.delete(sids, reason=reason)
        if ended:
            self._events.publish(SessionsEnded(tuple(s.info() for s in ended), actor, reason))
        return ended


def _merge(old: Iterable[tuple[str, float]], new: Iterable[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    """Methods with their latest use, oldest first (``mfa`` is derived, never recorded)."""
    times = dict(old)
    for method, at in new:
        if method != "mfa":
            times[method] = at
    return tuple(sorted(times.items(), key=lambda kv: kv[1]))
