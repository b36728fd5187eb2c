"""Where the authorization endpoint meets the hosted pages, and the services they share.

The authorization endpoint validates a request, and when a person must sign in or
consent it parks the request as a :class:`PendingAuthorization` in the ephemeral
store and sends the browser to ``/login?interaction=ID`` or
``/consent?interaction=ID``. Those pages record what happened on the pending
record and send the browser (303) to ``/authorize/resume?interaction=ID``, which
checks that the same login session finishes what it started and issues the code.

The Protocols below are the seams between packages; ``idp.services`` wires the
implementations.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import orjson

from idp.clock import Clock
from idp.ephemeral import EphemeralStore

SESSION_COOKIE = "__Host-idp-session"
INTERACTION_TTL = 600.0
MAX_RECORD = 8192  # bytes of one parked request: its parameters are bounded one by one, this bounds the sum
# Longest accepted values of the parameters /authorize and /logout share (one place, so both accept the same).
MAX_CLIENT_ID = 64
MAX_URI = 2048  # redirect_uri, post_logout_redirect_uri
MAX_STATE = 2048


class RecordTooLarge(Exception):
    """The parked request would exceed :data:`MAX_RECORD`; the endpoint answers ``invalid_request``."""


class TooManyPending(Exception):
    """This client address (or IPv6 /64) has too many sign-ins waiting; the endpoint answers 429, ``Retry-After``."""

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
    """Implemented by the deny-list (idp.denylist)."""

    def deny(self, kind: str, value: str, *, reason: str, actor: str, until: float | None = None) -> object:
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
    slot: str | None = None  # the per-address counter this record holds a place in (Interactions.settle)


def address_key(ip: str) -> str:
    """What the per-address cap counts by: an IPv4 address, or the /64 of an IPv6 one (one subscriber's
    network: anyone holding a /64 has 2^64 addresses to spread requests over). An IPv4-mapped IPv6 address
    counts as its IPv4 address; a value that is not an address counts as itself."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class Interactions:
    """Parked authorization requests, and how many each client address may have live at once.

    The cap counts live records per address (:func:`address_key`: an IPv4 address or an IPv6 /64). Each
    record holds a place in its address's counter from :meth:`create` until it is consumed (the resume,
    after the login or consent page, takes it: :meth:`settle` gives the place back) or expires. Counters
    live in fixed windows of :data:`INTERACTION_TTL` on the injected clock and a record lives one window, so
    every live record sits in the current or the previous window's counter; an abandoned record is forgotten
    when its window's counter is no longer read, at most one window after it expired. A place is taken with
    the store's atomic ``reserve`` (refused without counting when the two windows hold ``per_ip``), so
    concurrent requests, in any worker, cannot overshoot.
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
        digest = hashlib.sha256(address_key(ip).encode()).hexdigest()[:32]
        return f"interaction:ip:{digest}:{window}"

    def _count(self, key: str) -> int:
        raw = self._store.get(key)
        return int(raw) if raw else 0

    def _slot(self, ip: str) -> tuple[str, int, int]:
        """The counter a record parked now counts in, the previous window's count, and the Retry-After."""
        now = self._clock.now()
        window = int(now // INTERACTION_TTL)
        retry = max(1, math.ceil((window + 1) * INTERACTION_TTL - now))
        return self._ip_key(ip, window), self._count(self._ip_key(ip, window - 1)), retry

    def reserve(self, ip: str) -> str:
        """Take a place for one more live record of ``ip``: the counter key, or raise :class:`TooManyPending`.
        Blocking."""
        slot, earlier, retry = self._slot(ip)
        # Atomic check-and-increment: concurrent requests cannot overshoot, and a refusal changes nothing.
        if earlier >= self.per_ip or self._store.reserve(slot, self.per_ip - earlier, 2 * INTERACTION_TTL) is None:
            raise TooManyPending(retry)
        return slot

    def settle(self, pending: PendingAuthorization) -> None:
        """After the resume took ``pending``: give its place back, unless it was parked again (login, then
        consent). A counter whose window has passed is gone already; nothing to give back. Blocking."""
        if pending.slot and self._store.get(self._key(pending.id)) is None:
            self._store.release(pending.slot)

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
            slot=self._slot(ip)[0],  # before the size check: the record is stored with it
        )
        self._encode(pending)  # too large: refused before it counts against the address
        pending.slot = self.reserve(ip)
        try:
            self.save(pending)
        except Exception:
            self._store.release(pending.slot)  # not parked: its place is free
            raise
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
        """Take the record once (atomic): a resumed request cannot be replayed. The caller parks it again
        (:meth:`save`) or ends it, and then calls :meth:`settle`."""
        raw = self._store.take(self._key(interaction_id)) if interaction_id and len(interaction_id) <= 64 else None
        if raw is None:
            return None
        pending = PendingAuthorization(**orjson.loads(raw))
        if pending.expires_at > self._clock.now():
            return pending
        self.settle(pending)
        return None
