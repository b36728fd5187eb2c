"""Builds the object graph from settings: :func:`build_services`. Only the surfaces (``idp.app``,
``idp.cli``) call it.

Every service is built once, in dependency order, and handed to those that use it; the
domain reactions (a disabled user loses sessions, grants and live tokens; a compromised key's
tokens are denied; ended sessions take their grants with them) are subscribed to
:attr:`Services.events` here.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from idp.clients.admin import ClientAdmin
from idp.clients.changes import ClientChanges
from idp.clients.registry import ClientRegistry
from idp.clock import Clock, SystemClock
from idp.config import Settings
from idp.crypto import Digester, KeyError_, Sealer, derive_key
from idp.denylist.admin import DenyAdmin
from idp.denylist.entries import DenyChange
from idp.denylist.feed import DenyFeed
from idp.denylist.secevent import SET_TYP
from idp.denylist.service import DenyList
from idp.ephemeral import EphemeralStore
from idp.events import Events, KeyCompromised, SessionsEnded, UserDisabled
from idp.interaction import Interactions
from idp.keys.admin import KeyAdmin
from idp.keys.jwks import JwksCache
from idp.keys.kek import load_or_create_kek
from idp.keys.keyring import Keyring
from idp.keys.policy import key_policy
from idp.observability.metrics import Metrics, StateCollector
from idp.resource.dpop import DPoPVerifier, HmacNonces
from idp.sessions.account import Account
from idp.sessions.consents import Consents, RedirectApprovals
from idp.sessions.factors.policy import FactorPolicy
from idp.sessions.factors.service import Factors
from idp.sessions.passkeys import Passkeys
from idp.sessions.second_step import SecondSteps
from idp.sessions.signout import SignOut
from idp.sessions.store import LoginSessions
from idp.store.audit_repo import SqlAuditLog
from idp.store.clients_repo import PgClientsVersion, SqlClientStore, SqliteClientsVersion
from idp.store.consents_repo import SqlConsentStore, SqlGrantSummary
from idp.store.db import make_engine, make_sessionmaker
from idp.store.denylist_repo import SqlDenyStore
from idp.store.dpop_replay import replay_cache
from idp.store.factors_repo import SqlFactorStore, SqlRecoveryCodeStore
from idp.store.grants_repo import SqlGrantStore
from idp.store.keys_repo import SqlKeyStore
from idp.store.logout_repo import SqlLogoutOutbox
from idp.store.models import MetaRow
from idp.store.passkeys_repo import SqlPasskeyStore
from idp.store.sessions_repo import SqlSessionStore
from idp.store.stats_repo import SqlStateCounts
from idp.store.users_repo import SqlUserStore
from idp.tokens import jwt
from idp.tokens.access import AccessTokens
from idp.tokens.codes import AuthorizationCodes
from idp.tokens.id_token import IdTokens
from idp.tokens.logout_token import LogoutTokens
from idp.tokens.refresh import RefreshTokens
from idp.users.admin import UserAdmin
from idp.users.cache import CachedUserStore
from idp.users.directory import Directory
from idp.users.passwords import Passwords
from idp.users.throttle import LoginThrottle

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection

log = logging.getLogger("idp")
_KEK_CHECK = "kek_check"


class StartupError(Exception):
    """Cannot start: the message is one line naming the setting or the fix."""


@dataclass(frozen=True)
class Services:
    settings: Settings
    clock: Clock
    engine: Engine
    sessions: sessionmaker[Session]  # the SQL sessionmaker; login sessions are `login_sessions`
    ephemeral: EphemeralStore
    digester: Digester
    sealer: Sealer
    keyring: Keyring
    jwks: JwksCache
    clients: ClientRegistry
    directory: Directory
    audit: SqlAuditLog
    interactions: Interactions
    events: Events
    login_sessions: LoginSessions
    consents: Consents
    approvals: RedirectApprovals  # public clients' redirects, per session
    throttle: LoginThrottle
    factors: Factors
    passkeys: Passkeys
    second_steps: SecondSteps  # sign-ins between the password and the second factor
    account: Account
    signout: SignOut
    grants: RefreshTokens
    denylist: DenyList
    deny_store: SqlDenyStore
    client_admin: ClientAdmin
    user_admin: UserAdmin
    key_admin: KeyAdmin
    deny_admin: DenyAdmin
    client_changes: ClientChanges | None  # the follower of other workers' changes: only with a shared store
    metrics: Metrics
    access_tokens: AccessTokens
    id_tokens: IdTokens
    codes: AuthorizationCodes
    denylist_feed: DenyFeed
    dpop: DPoPVerifier  # DPoP proofs at the token and userinfo endpoints (RFC 9449)
    logout_outbox: SqlLogoutOutbox  # back-channel logout tokens owed, written with the end of the sessions
    logout_tokens: LogoutTokens

    def close(self) -> None:
        close_version = getattr(self.clients.version, "close", None)
        if close_version is not None:
            close_version()
        self.ephemeral.close()
        self.engine.dispose()


def services_of(conn: HTTPConnection) -> Services:
    """The app's services, from the lifespan state (:func:`idp.app.create_app` yields them as ``services``).

    A KeyError outside a running lifespan: an ASGI server runs it; tests wrap the app in
    ``asgi_lifespan.LifespanManager``."""
    services: Services = conn.scope["state"]["services"]
    return services


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


def _denylist(s: Settings, store: SqlDenyStore, keyring: Keyring, clock: Clock, ephemeral: EphemeralStore) -> DenyList:
    lifetime = max(s.access_token_ttl, s.id_token_ttl)

    def verify_set(token: str) -> dict[str, Any]:
        try:
            return jwt.verify(  # SETs carry no exp: versions order them (RFC 8417 §2.2)
                keyring, token, typ=SET_TYP, issuer=s.issuer, audience=None, now=clock.now(),
                require=("iss", "iat", "jti", "events"), allow_expired=True,
            )[1]  # fmt: skip
        except jwt.TokenInvalid as exc:  # DenyList.verify's contract: ValueError when it does not verify
            raise ValueError(str(exc)) from exc

    denylist = DenyList(
        store, clock, issuer=s.issuer, publisher=ephemeral,
        sign=lambda claims: jwt.sign(keyring, s.access_token_alg, SET_TYP, claims),
        verify=verify_set,
        token_lifetime=lifetime, kid_lifetime=lifetime + s.jwks_max_age + 86_400,
        leeway=2 * jwt.LEEWAY, sync_seconds=s.denylist_sync_seconds,
    )  # fmt: skip

    def reread_keys(changes: list[DenyChange] | None) -> None:
        # A kid entry from elsewhere (the CLI): re-read the keys now, so this process stops signing with it.
        if any(ch.entry is not None and ch.entry.kind == "kid" for ch in changes or ()):
            keyring.refresh(force=True)

    denylist.listeners.append(reread_keys)
    return denylist


def _dpop(s: Settings, kek: bytes, clock: Clock, ephemeral: EphemeralStore) -> DPoPVerifier:
    """Proof jtis in the shared ephemeral store; nonces (when demanded) keyed from the KEK, so every worker and
    instance hands out and accepts the same ones."""
    nonces = None
    if s.dpop_nonces:
        nonces = HmacNonces(derive_key(kek, b"idp/dpop-nonce/v1"), period_seconds=s.dpop_nonce_seconds, now=clock.now)
    return DPoPVerifier(
        max_age_seconds=s.dpop_proof_max_age,
        future_skew_seconds=s.dpop_proof_future_skew,
        replay=replay_cache(ephemeral, clock, max_entries=s.dpop_replay_max_entries),
        now=clock.now,
        nonces=nonces,
    )


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    ephemeral: EphemeralStore | None = None,
    engine: Engine | None = None,
) -> Services:
    s = settings
    clock = clock or SystemClock()
    try:
        kek = load_or_create_kek(s.kek, s.kek_file)
    except Exception as exc:
        raise StartupError(str(exc)) from None
    engine = engine or make_engine(s.sqlalchemy_url)
    sessions = make_sessionmaker(engine)
    digester, sealer = Digester(kek), Sealer(kek)
    ephemeral = ephemeral or make_ephemeral(s, clock)
    events = Events()
    audit = SqlAuditLog(sessions, clock)
    keyring = Keyring(
        SqlKeyStore(sessions),
        sealer,
        clock,
        key_policy(
            access_token_alg=s.access_token_alg,
            id_token_alg=s.id_token_alg,
            rotation_days=s.key_rotation_days,
            jwks_max_age=s.jwks_max_age,
            access_token_ttl=s.access_token_ttl,
            id_token_ttl=s.id_token_ttl,
        ),
    )
    passwords = Passwords(
        time_cost=s.argon2_time_cost, memory_kib=s.argon2_memory_kib, parallelism=s.argon2_parallelism
    )
    directory = Directory(CachedUserStore(SqlUserStore(sessions), clock), passwords, clock)
    clients = _client_registry(s, engine, sessions, digester, clock, ephemeral)

    # Tokens: the deny-list first (refresh families deny their access tokens in the same commit).
    deny_store = SqlDenyStore(sessions, audit)
    denylist = _denylist(s, deny_store, keyring, clock, ephemeral)
    grants = RefreshTokens(
        SqlGrantStore(sessions, audit, deny_store), digester, sealer, clock,
        idle_ttl=s.refresh_idle_ttl, absolute_ttl=s.refresh_absolute_ttl,
        grace_seconds=s.refresh_grace_seconds, grace_max_uses=s.refresh_grace_max_uses,
        denylist=denylist, events=events,
    )  # fmt: skip
    access_tokens = AccessTokens(
        keyring, clock, issuer=s.issuer, ttl=s.access_token_ttl, default_alg=s.access_token_alg,
        latest_cutoff=denylist.latest_cutoff,  # the in-memory deny set: no SQL per token
    )  # fmt: skip
    id_tokens = IdTokens(keyring, clock, issuer=s.issuer, ttl=s.id_token_ttl, default_alg=s.id_token_alg)
    codes = AuthorizationCodes(ephemeral, digester, clock, ttl=s.authorization_code_ttl)

    # Sessions: sign-out over the grants and the deny-list; login sessions announce their end. The back-channel
    # logout tokens each end owes are written in the transaction that ends the sessions (the outbox).
    signout = SignOut(grants, denylist, audit, keep_offline=not s.logout_revokes_offline)
    logout_outbox = SqlLogoutOutbox(sessions, clock.now)
    login_sessions = LoginSessions(
        SqlSessionStore(sessions, on_end=[logout_outbox.enqueue]), digester, clock, directory.store,
        idle_ttl=s.session_idle_ttl, absolute_ttl=s.session_absolute_ttl, events=events,
    )  # fmt: skip
    consents = Consents(SqlConsentStore(sessions), clock)

    def session_expiry(sid: str) -> float | None:
        session = login_sessions.get_by_sid(sid)
        return session.absolute_expires_at if session is not None else None

    throttle = LoginThrottle(
        ephemeral, clock, max_failures=s.login_max_failures, lockout_seconds=s.login_lockout_seconds
    )
    factors = Factors(
        SqlFactorStore(sessions), SqlRecoveryCodeStore(sessions), sealer=sealer, digester=digester, clock=clock,
        throttle=LoginThrottle(ephemeral, clock, max_failures=s.login_max_failures,
                               lockout_seconds=s.login_lockout_seconds, scope="otp"),
        audit=audit, policy=FactorPolicy(s.mfa_policy, s.mfa_flag),
        issuer_name=s.totp_issuer_name or (urlsplit(s.issuer).hostname or s.issuer),
    )  # fmt: skip
    passkeys = Passkeys(
        SqlPasskeyStore(sessions), ephemeral, digester, clock, audit, issuer=s.issuer,
        rp_name=s.totp_issuer_name or (urlsplit(s.issuer).hostname or s.issuer),
        per_address=s.passkey_ceremonies_per_ip,
    )  # fmt: skip
    if s.passkeys_enabled:
        factors.other_kinds.append(passkeys.has_any)  # a passkey is a second factor after a password
    account = Account(
        sessions=login_sessions, consents=consents, directory=directory, signout=signout, clients=clients,
        grants=SqlGrantSummary(sessions), throttle=throttle, audit=audit, clock=clock,
    )  # fmt: skip

    metrics = Metrics()
    metrics.add_state(StateCollector(keyring.rows, clock.now, SqlStateCounts(sessions)))
    audit.listeners.append(metrics.audit_event)

    feed = DenyFeed(
        denylist, ephemeral, heartbeat=s.denylist_heartbeat_seconds, clock=clock,
        max_streams=s.denylist_max_streams, per_client=s.denylist_streams_per_client,
    )  # fmt: skip

    def end_sessions(user_id: str, actor: str, reason: str) -> int:
        return len(login_sessions.end_all_for_user(user_id, actor=actor, reason=reason))

    # The domain reactions, in the order they run.
    events.subscribe(SessionsEnded, signout.sessions_ended)
    events.subscribe(UserDisabled, account.user_disabled)

    def deny_the_key(event: KeyCompromised) -> None:
        denylist.deny("kid", event.kid, reason="signing key compromised", actor=event.actor)

    events.subscribe(KeyCompromised, deny_the_key)

    user_admin = UserAdmin(
        directory, audit, sign_out_everywhere=account.end_everything, events=events,
        reset_factors=lambda user_id, actor, reason: (
            factors.reset(user_id, actor=actor, reason=reason) + passkeys.reset(user_id, actor=actor, reason=reason)
        ),
    )  # fmt: skip

    return Services(
        settings=s,
        clock=clock,
        engine=engine,
        sessions=sessions,
        ephemeral=ephemeral,
        digester=digester,
        sealer=sealer,
        keyring=keyring,
        jwks=JwksCache(keyring),
        clients=clients,
        directory=directory,
        audit=audit,
        interactions=Interactions(ephemeral, clock, per_ip=s.authorize_pending_per_ip),
        events=events,
        login_sessions=login_sessions,
        consents=consents,
        approvals=RedirectApprovals(ephemeral, clock, session_expiry),
        throttle=throttle,
        factors=factors,
        passkeys=passkeys,
        second_steps=SecondSteps(ephemeral, digester, clock),
        account=account,
        signout=signout,
        grants=grants,
        denylist=denylist,
        deny_store=deny_store,
        client_admin=ClientAdmin(clients, denylist, audit, events),
        user_admin=user_admin,
        key_admin=KeyAdmin(keyring, audit, events),
        deny_admin=DenyAdmin(denylist, grants, end_sessions=end_sessions),
        client_changes=None if clients.bus is None else ClientChanges(clients, ephemeral),
        metrics=metrics,
        access_tokens=access_tokens,
        id_tokens=id_tokens,
        codes=codes,
        denylist_feed=feed,
        dpop=_dpop(s, kek, clock, ephemeral),
        logout_outbox=logout_outbox,
        logout_tokens=LogoutTokens(keyring, clock, issuer=s.issuer, default_alg=s.id_token_alg),
    )


def check_kek(c: Services) -> None:
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


def ping_database(c: Services) -> None:
    try:
        with c.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "unreachable"
        raise StartupError(f"IDP_DATABASE_URL: cannot connect ({reason})") from None
