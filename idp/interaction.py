"""Where the authorization endpoint meets the hosted pages, and the services they share.

The authorization endpoint validates a request, and when a person must sign in or
consent it parks the request as a :class:`PendingAuthorization` in the ephemeral
store and sends the browser to ``/login?interaction=ID`` or
``/consent?interaction=ID``. Those pages record what happened on the pending
record and send the browser (303) to ``/authorize/resume?interaction=ID``, which
checks that the same login session finishes what it started and issues the code.

The Protocols below are the seams between packages; ``idp.container`` wires the
implementations.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import orjson

from idp.clock import Clock
from idp.store.ephemeral import EphemeralStore

SESSION_COOKIE = "__Host-idp-session"
INTERACTION_TTL = 600.0
MAX_RECORD = 8192  # bytes of one parked request: its parameters are bounded one by one, this bounds the sum


class RecordTooLarge(Exception):
    """The parked request would exceed :data:`MAX_RECORD`; the endpoint answers ``invalid_request``."""


class TooManyPending(Exception):
    """This client IP has too many sign-ins waiting; the endpoint answers 429 with ``Retry-After``."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class SessionInfo:
    """What the protocol needs to know of a login session."""

    sid: str  # public id, goes into tokens as `sid`; never the cookie value
    user_id: str
    auth_time: float
    amr: tuple[str, ...] = ("pwd",)


class SessionReader(Protocol):
    def from_cookie(self, cookie_value: str | None) -> SessionInfo | None:
        """Validate the cookie's session server-side (idle/absolute expiry, user enabled); slide it. Blocking."""
        ...

    def is_active(self, sid: str) -> bool:
        """False once the session has ended (logout, expiry, sign-out everywhere)."""
        ...


class ConsentReader(Protocol):
    def covers(self, user_id: str, client_id: str, scopes: Iterable[str]) -> bool:
        """True when the user already granted at least these scopes to this client."""
        ...


class GrantRevoker(Protocol):
    """Implemented by the refresh-token families (idp.tokens.refresh)."""

    def revoke_for_session(self, sid: str, *, keep_offline: bool, actor: str, reason: str) -> int: ...

    def revoke_for_user(self, user_id: str, *, actor: str, reason: str, client_id: str | None = None) -> int: ...


class DenyWriter(Protocol):
    """Implemented by the deny-list (idp.tokens.denylist)."""

    def deny(self, kind: str, value: str, *, reason: str, actor: str, until: float | None = None) -> None:
        """kind: jti | subject | session | client | kid. Subject/client entries deny tokens issued before now."""
        ...

    def deny_many(self, items: Sequence[tuple[str, str, float | None]], *, reason: str, actor: str) -> Any:
        """Several ``(kind, value, until)`` entries in one write, all or none (a revoked grant's access tokens)."""
        ...

    def prepare(self, items: Sequence[tuple[str, str, float | None]]) -> list[Any]:
        """:meth:`deny_many` in two halves, for a caller that writes the entries in a transaction of its own
        (a grant revoked with its access tokens, one commit): the entries to write, validated..."""
        ...

    def committed(self, entries: Sequence[Any]) -> None:
        """...and, after that commit, the written entries: applied here and published."""
        ...

    def is_denied(self, claims: Mapping[str, Any], kid: str | None = None) -> bool:
        """Whether a token with these claims (``sub``, ``client_id``, ``sid``, ``jti``, ``iat``) is denied."""
        ...


@dataclass
class PendingAuthorization:
    id: str
    client_id: str
    params: dict[str, str]  # the validated authorization request: only the parameters the flow uses, each bounded
    scopes: list[str]  # the scopes the consent page asks for and the code carries
    created_at: float
    expires_at: float
    login_sid: str | None = None  # the session that signed in for this request
    login_at: float | None = None
    consent: str | None = None  # "granted" | "denied"
    hint_sub: str | None = None  # the subject of a verified id_token_hint: only that person may finish
    extra: dict[str, str] = field(default_factory=dict)


class Interactions:
    """Parked authorization requests, and how many each client IP may have waiting.

    The per-IP count lives in fixed windows of :data:`INTERACTION_TTL` on the injected clock. A record lives
    one window, so every live record was created in the current or the previous window, and admitting a new
    one only while the two windows together hold fewer than ``per_ip`` keeps at most ``per_ip`` live records
    per address. The count is reserved with an atomic increment before the record is written, so concurrent
    requests cannot overshoot; a refused request does not count when it was refused before reserving.
    """

    def __init__(self, store: EphemeralStore, clock: Clock, *, per_ip: int = 100) -> None:
        self._store = store
        self._clock = clock
        self.per_ip = per_ip

    @staticmethod
    def _key(interaction_id: str) -> str:
        return f"interaction:{interaction_id}"

    @staticmethod
    def _ip_key(ip: str, window: int) -> str:
        return f"interaction:ip:{hashlib.sha256(ip.encode()).hexdigest()[:32]}:{window}"

    def _count(self, key: str) -> int:
        raw = self._store.get(key)
        return int(raw) if raw else 0

    def reserve(self, ip: str) -> None:
        """Count one more waiting sign-in for ``ip``, or raise :class:`TooManyPending`. Blocking."""
        now = self._clock.now()
        window = int(now // INTERACTION_TTL)
        retry = max(1, math.ceil((window + 1) * INTERACTION_TTL - now))
        current, previous = self._ip_key(ip, window), self._ip_key(ip, window - 1)
        earlier = self._count(previous)
        if earlier + self._count(current) >= self.per_ip:
            raise TooManyPending(retry)
        if self._store.incr(current, 2 * INTERACTION_TTL) + earlier > self.per_ip:  # atomic: concurrency-safe
            raise TooManyPending(retry)

    def create(
        self, client_id: str, params: dict[str, str], scopes: list[str], *, ip: str, hint_sub: str | None = None
    ) -> PendingAuthorization:
        """Park a request. Raises :class:`RecordTooLarge` or :class:`TooManyPending`. Blocking."""
        now = self._clock.now()
        pending = PendingAuthorization(
            id=secrets.token_urlsafe(16),
            client_id=client_id,
            params=params,
            scopes=scopes,
            created_at=now,
            expires_at=now + INTERACTION_TTL,
            hint_sub=hint_sub,
        )
        self._encode(pending)  # too large: refused before it counts against the address
        self.reserve(ip)
        self.save(pending)
        return pending

    @staticmethod
    def _encode(pending: PendingAuthorization) -> bytes:
        raw = orjson.dumps(asdict(pending))
        if len(raw) > MAX_RECORD:
            raise RecordTooLarge(f"{len(raw)} bytes")
        return raw

    def save(self, pending: PendingAuthorization) -> None:
        ttl = max(pending.expires_at - self._clock.now(), 1.0)
        self._store.put(self._key(pending.id), self._encode(pending), ttl)

    def get(self, interaction_id: str) -> PendingAuthorization | None:
        if not interaction_id or len(interaction_id) > 64:
            return None
        raw = self._store.get(self._key(interaction_id))
        if raw is None:
            return None
        pending = PendingAuthorization(**orjson.loads(raw))
        return pending if pending.expires_at > self._clock.now() else None

    def finish(self, interaction_id: str) -> PendingAuthorization | None:
        """Take the record once (atomic): a resumed request cannot be replayed."""
        raw = self._store.take(self._key(interaction_id)) if interaction_id and len(interaction_id) <= 64 else None
        if raw is None:
            return None
        pending = PendingAuthorization(**orjson.loads(raw))
        return pending if pending.expires_at > self._clock.now() else None
