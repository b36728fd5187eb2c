"""The BFF's server-side session: what one browser sign-in holds, and the store contract behind it.

The cookie carries a random id; the store is keyed by its digest, so a stolen table opens no session.
Tokens are encrypted by the store implementations before they are written (the browser never sees them).
``version`` is bumped on every write: a refresh replaces the token set only if nobody else did first, and
``lease`` makes one worker (of all workers) the one that refreshes, so parallel API calls from one page
never present the same refresh token twice (which idp treats as reuse and answers by revoking the family).

The same store keeps each sign-in round trip under way as a :class:`LoginRecord` (keyed by the digest of the
login cookie's random id, taken once by the callback), and the per-address counters that bound how many of
them anonymous browsers may hold (``claim_slot`` / ``free_slot``, :mod:`idp.bff.login`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class TokenSet:
    """What idp's token endpoint answered, kept server-side."""

    access_token: str
    access_expires_at: float  # epoch seconds
    refresh_token: str | None
    id_token: str | None  # the id_token_hint for RP-initiated logout
    scope: str = ""


@dataclass(frozen=True, slots=True)
class BffSession:
    key: str  # the digest of the cookie's session id, never the id itself
    sub: str
    sid: str | None  # idp's session id from the ID token: back-channel logout ends sessions by it
    claims: Mapping[str, Any]  # what /bff/user may show the SPA (ID token / userinfo claims, no tokens)
    tokens: TokenSet
    created_at: float
    expires_at: float  # absolute lifetime; the store drops the record then
    version: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LoginRecord:
    """One sign-in round trip under way, kept server-side until the callback takes it."""

    key: str  # the digest of the login cookie's random id, never the id itself
    flow: Mapping[str, Any]  # Authlib's per-state data (state, nonce, PKCE verifier): sealed at rest
    return_to: str  # where the browser goes afterwards (a checked path, at most 512 characters)
    slot: str  # the per-address counter this record holds a place in ("" when none)
    expires_at: float  # epoch seconds; the store drops the record then


class SessionStore(Protocol):
    """Persistence for BFF sessions. In-process, SQL and Redis implementations honour the same contract."""

    async def create(self, session: BffSession) -> None:
        """Write a new session (``version`` as given)."""

    async def get(self, key: str) -> BffSession | None:
        """The live session, or None when absent or past ``expires_at``."""

    async def replace(self, session: BffSession, *, expected_version: int) -> bool:
        """Compare-and-set: write ``session`` (whose version is ``expected_version + 1``) only if the stored
        version is still ``expected_version``. False when another writer won or the session is gone."""

    async def delete(self, key: str) -> None: ...

    async def delete_by_sid(self, sid: str) -> int:
        """End every session with this idp ``sid`` (back-channel logout); how many ended."""

    async def delete_by_sub(self, sub: str) -> int:
        """End every session of this user (a logout token with ``sub`` and no ``sid``)."""

    async def lease(self, key: str, owner: str, ttl: float) -> bool:
        """Take the refresh lease on a session for ``ttl`` seconds: True for exactly one owner at a time,
        across workers. The lease lapses by itself; ``release`` gives it back early."""

    async def release(self, key: str, owner: str) -> None: ...

    async def put_login(self, record: LoginRecord) -> None:
        """Write a login record (``flow`` sealed), live until ``record.expires_at``; purges expired ones."""

    async def take_login(self, key: str) -> LoginRecord | None:
        """The live login record, removed in the same atomic step: of concurrent takes at most one gets it.
        None when absent, taken already, or past ``expires_at``."""

    async def claim_slot(self, counter: str, limit: int, ttl: float) -> bool:
        """Add one to ``counter`` unless it already holds ``limit`` (atomic: concurrent claims never overshoot,
        a refusal changes nothing). A counter lives ``ttl`` seconds from its first claim."""

    async def slots_taken(self, counter: str) -> int:
        """The live count of ``counter`` (0 when absent or lapsed)."""

    async def free_slot(self, counter: str) -> None:
        """Give one place back (never below 0; nothing when the counter has lapsed)."""

    async def close(self) -> None: ...
