"""Builds the object graph from settings. Only ``idp.app`` and ``idp.cli`` call this."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from idp.clients.registry import ClientRegistry
from idp.clock import Clock, SystemClock
from idp.config import Settings
from idp.crypto import Digester, KeyError_, Sealer
from idp.interaction import Interactions
from idp.keys.jwks import JwksCache
from idp.keys.kek import load_or_create_kek
from idp.keys.keyring import KeyPolicy, Keyring
from idp.metadata import build_metadata
from idp.store.audit_repo import SqlAuditLog
from idp.store.clients_repo import SqlClientStore
from idp.store.db import make_engine, make_sessionmaker
from idp.store.ephemeral import EphemeralStore
from idp.store.keys_repo import SqlKeyStore
from idp.store.models import MetaRow
from idp.store.users_repo import SqlUserStore
from idp.users.directory import Directory
from idp.users.passwords import Passwords

log = logging.getLogger("idp")
_KEK_CHECK = "kek_check"


class StartupError(Exception):
    """Cannot start: the message is one line naming the setting or the fix."""


@dataclass
class Container:
    settings: Settings
    clock: Clock
    engine: Engine
    sessions: sessionmaker[Session]
    ephemeral: EphemeralStore
    digester: Digester
    sealer: Sealer
    keyring: Keyring
    jwks: JwksCache
    clients: ClientRegistry
    directory: Directory
    audit: SqlAuditLog
    metadata: dict[str, Any]
    interactions: Interactions
    # Wired by build_container from their packages (see idp.interaction for the seams):
    login_sessions: Any = None  # idp.sessions: SessionReader + session management
    consents: Any = None  # idp.sessions.consents: ConsentReader + grant/revoke/list
    grants: Any = None  # idp.tokens.refresh: GrantRevoker + rotation
    denylist: Any = None  # idp.tokens.denylist: DenyWriter + checks + change feed
    extras: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        self.ephemeral.close()
        self.engine.dispose()


def make_ephemeral(settings: Settings, clock: Clock) -> EphemeralStore:
    if settings.redis_url:
        from idp.store.redis_store import RedisStore

        return RedisStore(settings.redis_url, prefix=settings.redis_prefix)
    from idp.store.memory import MemoryStore

    return MemoryStore(clock)


def build_container(
    settings: Settings,
    *,
    clock: Clock | None = None,
    ephemeral: EphemeralStore | None = None,
    engine: Engine | None = None,
) -> Container:
    clock = clock or SystemClock()
    try:
        kek = load_or_create_kek(settings.kek, settings.kek_file)
    except Exception as exc:
        raise StartupError(str(exc)) from None
    engine = engine or make_engine(settings.sqlalchemy_url)
    sessions = make_sessionmaker(engine)
    digester, sealer = Digester(kek), Sealer(kek)
    lead = settings.jwks_max_age + 60
    policy = KeyPolicy(
        algorithms=tuple(dict.fromkeys([settings.access_token_alg, settings.id_token_alg, "RS256", "ES256"])),
        rotation_seconds=settings.key_rotation_days * 86_400,
        publish_lead=lead,
        # Retired keys verify every token they signed, plus a day for id_token_hint at logout.
        retire_keep=max(settings.access_token_ttl, settings.id_token_ttl) + lead + 86_400,
    )
    keyring = Keyring(SqlKeyStore(sessions), sealer, clock, policy)
    passwords = Passwords(
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )
    ephemeral = ephemeral or make_ephemeral(settings, clock)
    c = Container(
        settings=settings,
        clock=clock,
        engine=engine,
        sessions=sessions,
        ephemeral=ephemeral,
        digester=digester,
        sealer=sealer,
        keyring=keyring,
        jwks=JwksCache(keyring),
        clients=ClientRegistry(SqlClientStore(sessions), digester, clock),
        directory=Directory(SqlUserStore(sessions), passwords, clock),
        audit=SqlAuditLog(sessions, clock),
        metadata=build_metadata(settings.issuer),
        interactions=Interactions(ephemeral, clock),
    )
    _wire(c)
    return c


def _wire(c: Container) -> None:
    """Attach the services of the packages built on the foundation. Each block owns its lines."""


def check_kek(c: Container) -> None:
    """The KEK must open what this database holds; a foreign or corrupt KEK stops the start."""
    with c.sessions.begin() as s:
        row = s.get(MetaRow, _KEK_CHECK)
        if row is None:
            blob = c.sealer.seal(b"idp-kek-check", _KEK_CHECK.encode())
            s.add(MetaRow(key=_KEK_CHECK, value=base64.b64encode(blob).decode()))
            return
        try:
            c.sealer.open(base64.b64decode(row.value), _KEK_CHECK.encode())
        except KeyError_:
            raise StartupError(
                "IDP_KEK: the key-encryption key does not match this database (wrong IDP_KEK or IDP_KEK_FILE)"
            ) from None


def ping_database(c: Container) -> None:
    try:
        with c.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "unreachable"
        raise StartupError(f"IDP_DATABASE_URL: cannot connect ({reason})") from None
