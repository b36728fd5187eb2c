"""SessionStore implementations: in-process (one process), SQL (SQLite, PostgreSQL) and Redis.

All three write what :mod:`idp.bff.sealing` makes of a session (digested key, sealed tokens), drop a record
once ``expires_at`` passes, and take leases in a keyspace of their own (a lease needs no session: a
back-channel logout token's ``jti`` is remembered as a lease that is never released). They keep sign-ins
under way the same way (digested key, sealed flow, dropped at ``expires_at``, taken once) and the
per-address counters that cap them (:mod:`idp.bff.login`).
"""

from __future__ import annotations

from idp.bff.config import BffConfigError
from idp.bff.sealing import SessionCrypto
from idp.bff.session import SessionStore
from idp.clock import Clock


def open_store(url: str, crypto: SessionCrypto, clock: Clock, *, prefix: str = "bff:") -> SessionStore:
    """The store a URL names: ``memory://``, ``sqlite:///PATH``, ``postgresql://...``, ``redis://...``."""
    scheme = url.split(":", 1)[0]
    if scheme == "memory":
        from idp.bff.stores.memory import MemorySessionStore

        return MemorySessionStore(crypto, clock)
    if scheme in ("sqlite", "postgresql", "postgres"):
        from idp.bff.stores.sql import SqlSessionStore

        return SqlSessionStore.from_url(url, crypto, clock)
    if scheme in ("redis", "rediss"):
        from idp.bff.stores.redis import RedisSessionStore

        return RedisSessionStore.from_url(url, crypto, clock, prefix=prefix)
    raise BffConfigError(f"IDP_BFF_STORE_URL: unknown scheme {scheme!r}")
