"""Builds the object graph from settings. Only ``idp.app`` and ``idp.cli`` call this."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
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
from idp.store.clients_repo import PgClientsVersion, SqlClientStore, SqliteClientsVersion
from idp.store.db import make_engine, make_sessionmaker
from idp.store.ephemeral import EphemeralStore
from idp.store.keys_repo import SqlKeyStore
from idp.store.models import MetaRow
from idp.store.users_repo import SqlUserStore
from idp.users.cache import CachedUserStore
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
    approvals: Any = None  # idp.sessions.consents.RedirectApprovals: public clients' redirects, per session
    grants: Any = None  # idp.tokens.refresh: GrantRevoker + rotation
    denylist: Any = None  # idp.tokens.denylist: DenyWriter + checks + change feed
    extras: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        close_version = getattr(self.clients.version, "close", None)
        if close_version is not None:
            close_version()
        self.ephemeral.close()
        self.engine.dispose()


def make_ephemeral(settings: Settings, clock: Clock) -> EphemeralStore:
    if settings.redis_url:
        from idp.store.redis_store import RedisStore

        return RedisStore(settings.redis_url, prefix=settings.redis_prefix)
    from idp.store.memory import MemoryStore

    return MemoryStore(clock)


def _client_registry(
    settings: Settings,
    engine: Engine,
    sessions: sessionmaker[Session],
    digester: Digester,
    clock: Clock,
    ephemeral: EphemeralStore,
) -> ClientRegistry:
    """Changes reach the other workers through the shared store (Redis) and, without it, through the store's
    change counter every lookup reads (the CLI runs in another process, with no channel to the server):
    ``idp.clients.registry``."""
    version: Callable[[], int | None] | None = None
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        if path and path != ":memory:":
            version = SqliteClientsVersion(path)
    elif settings.embedded:
        version = PgClientsVersion(engine)
    return ClientRegistry(
        SqlClientStore(sessions),
        digester,
        clock,
        issuer=settings.issuer,
        api_audience=settings.audience,
        version=version,
        bus=None if settings.embedded else ephemeral,
    )


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
        algorithms=tuple(dict.fromkeys([settings.access_token_alg, settings.id_token_alg, "RS256", "ES256", "EdDSA"])),
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
        clients=_client_registry(settings, engine, sessions, digester, clock, ephemeral),
        directory=Directory(CachedUserStore(SqlUserStore(sessions), clock), passwords, clock),
        audit=SqlAuditLog(sessions, clock),
        metadata=build_metadata(settings.issuer),
        interactions=Interactions(ephemeral, clock, per_ip=settings.authorize_pending_per_ip),
    )
    _wire(c)
    return c


def _wire(c: Container) -> None:
    """Attach the services of the packages built on the foundation. Each block owns its lines."""
    _wire_sessions(c)
    _wire_denylist(c)
    _wire_clients(c)
    _wire_observability(c)
    _wire_oauth(c)


def _wire_sessions(c: Container) -> None:
    """idp.sessions: login sessions, consents, login throttle, account actions."""
    from idp.sessions.account import Account
    from idp.sessions.consents import Consents, RedirectApprovals
    from idp.sessions.signout import SignOut
    from idp.sessions.store import LoginSessions
    from idp.store.consents_repo import SqlConsentStore, SqlGrantSummary
    from idp.store.sessions_repo import SqlSessionStore
    from idp.users.admin import UserAdmin
    from idp.users.throttle import LoginThrottle

    s = c.settings
    signout = SignOut(lambda: c.grants, lambda: c.denylist, c.audit, keep_offline=not s.logout_revokes_offline)
    c.login_sessions = LoginSessions(
        SqlSessionStore(c.sessions), c.digester, c.clock, c.directory.store,
        idle_ttl=s.session_idle_ttl, absolute_ttl=s.session_absolute_ttl, on_end=signout.sessions_ended,
    )  # fmt: skip
    c.consents = Consents(SqlConsentStore(c.sessions), c.clock)
    sessions = c.login_sessions

    def session_expiry(sid: str) -> float | None:
        session = sessions.get_by_sid(sid)
        return session.absolute_expires_at if session is not None else None

    c.approvals = RedirectApprovals(c.ephemeral, c.clock, session_expiry)
    throttle = LoginThrottle(
        c.ephemeral, c.clock, max_failures=s.login_max_failures, lockout_seconds=s.login_lockout_seconds
    )
    account = Account(
        sessions=c.login_sessions, consents=c.consents, directory=c.directory, signout=signout, clients=c.clients,
        grants=SqlGrantSummary(c.sessions), throttle=throttle, audit=c.audit, clock=c.clock,
    )  # fmt: skip
    c.extras.update(login_throttle=throttle, account=account, signout=signout)
    c.extras.setdefault("on_user_disabled", []).append(account.user_disabled)
    c.extras["user_admin"] = UserAdmin(
        c.directory, c.audit, sign_out_everywhere=account.end_everything,
        on_disabled=lambda: c.extras.get("on_user_disabled", []),
    )  # fmt: skip


def _wire_denylist(c: Container) -> None:
    """idp.tokens.denylist: the deny-list, its SET signer, the key-compromise hook."""
    from idp.keys.admin import KeyAdmin
    from idp.store.denylist_repo import SqlDenyStore
    from idp.tokens import jwt
    from idp.tokens.denylist import DenyList
    from idp.tokens.secevent import SET_TYP

    s = c.settings
    lifetime = max(s.access_token_ttl, s.id_token_ttl)
    store = c.extras["deny_store"] = SqlDenyStore(c.sessions, c.audit)
    c.denylist = DenyList(
        store, c.clock, issuer=s.issuer, publisher=c.ephemeral,
        sign=lambda claims: jwt.sign(c.keyring, s.access_token_alg, SET_TYP, claims),
        verify=lambda token: jwt.verify(  # SETs carry no exp: versions order them (RFC 8417 §2.2)
            c.keyring, token, typ=SET_TYP, issuer=s.issuer, audience=None, now=c.clock.now(),
            require=("iss", "iat", "jti", "events"), allow_expired=True,
        )[1],
        token_lifetime=lifetime, kid_lifetime=lifetime + s.jwks_max_age + 86_400,
        leeway=2 * jwt.LEEWAY, sync_seconds=s.denylist_sync_seconds,
    )  # fmt: skip
    c.extras.setdefault("on_key_compromised", []).append(
        lambda kid, actor: c.denylist.deny("kid", kid, reason="signing key compromised", actor=actor)
    )
    c.extras["key_admin"] = KeyAdmin(c.keyring, c.audit, lambda: c.extras.get("on_key_compromised", []))

    def reread_keys(changes: list[Any] | None) -> None:
        # A kid entry from elsewhere (the CLI): re-read the keys now, so this process stops signing with it.
        if any(ch.entry is not None and ch.entry.kind == "kid" for ch in changes or ()):
            c.keyring.refresh(force=True)

    c.denylist.listeners.append(reread_keys)


def _wire_clients(c: Container) -> None:
    """idp.clients: the client use cases (CLI and admin API), the follower of changes made elsewhere."""
    from idp.clients.admin import ClientAdmin
    from idp.web.client_changes import follow_changes

    c.extras["client_admin"] = ClientAdmin(c.clients, lambda: c.denylist, c.audit)
    follow_changes(c)


def _wire_observability(c: Container) -> None:
    """idp.observability: Prometheus metrics fed by the HTTP middleware and the audit log."""
    from idp.observability.metrics import Metrics, StateCollector
    from idp.store.stats_repo import SqlStateCounts

    metrics = Metrics()
    metrics.add_state(StateCollector(c.keyring.rows, c.clock.now, SqlStateCounts(c.sessions)))
    c.audit.listeners.append(metrics.audit_event)
    c.extras["metrics"] = metrics


def _wire_oauth(c: Container) -> None:
    """idp.tokens + idp.oauth: access/ID tokens, authorization codes, refresh-token families."""
    from idp.store.grants_repo import SqlGrantStore
    from idp.tokens.access import AccessTokens
    from idp.tokens.codes import AuthorizationCodes
    from idp.tokens.id_token import IdTokens
    from idp.tokens.refresh import RefreshTokens

    s = c.settings
    c.grants = RefreshTokens(
        SqlGrantStore(c.sessions, c.audit, c.extras["deny_store"]), c.digester, c.sealer, c.clock,
        idle_ttl=s.refresh_idle_ttl, absolute_ttl=s.refresh_absolute_ttl,
        grace_seconds=s.refresh_grace_seconds, grace_max_uses=s.refresh_grace_max_uses, denylist=lambda: c.denylist,
    )  # fmt: skip
    c.extras["access_tokens"] = AccessTokens(
        c.keyring, c.clock, issuer=s.issuer, ttl=s.access_token_ttl, default_alg=s.access_token_alg,
        latest_cutoff=lambda claims: c.denylist.latest_cutoff(claims),  # the in-memory deny set: no SQL per token
    )  # fmt: skip
    c.extras["id_tokens"] = IdTokens(
        c.keyring, c.clock, issuer=s.issuer, ttl=s.id_token_ttl, default_alg=s.id_token_alg
    )
    c.extras["codes"] = AuthorizationCodes(c.ephemeral, c.digester, c.clock, ttl=s.authorization_code_ttl)


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
