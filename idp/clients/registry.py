"""The client registry: creation with generated credentials, cached lookup, secret checks.

A change to a client (update, disable, secret rotation, delete) reaches every worker before
the call returns, so no request that starts afterwards runs with the old registration:

* this process drops its cached copy at once;
* with a shared ephemeral store (Redis) the change is published on :data:`CHANNEL`; every
  worker of every instance drops its copy (``idp.clients.changes``) and acknowledges,
  and the writer waits for as many acknowledgements as Redis delivered the message to
  (at most :data:`ACK_TIMEOUT`; a worker that does not answer is stuck and serves stale
  entries for at most the cache lifetime). The writer's own process has dropped its copy
  already: its follower is not waited for when its loop cannot run (the writer blocks it);
* the store bumps a change counter in the change's transaction; on SQLite, and on PostgreSQL
  without Redis, every lookup reads it (the CLI in another process has no channel to the server, and this covers it):
  on SQLite a local read (:class:`idp.store.clients_repo.SqliteClientsVersion`), on
  PostgreSQL one primary-key SELECT (:class:`idp.store.clients_repo.PgClientsVersion`).
  A counter that cannot be read sends that lookup to the store, and keeps the cache.

The cache lifetime (``cache_seconds``) stays as the bound for a worker that lost its channel.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

import orjson

from idp.clients.audiences import ADMIN_SCOPE, reserved_audience
from idp.clients.model import (
    AUTH_METHODS,
    GRANTS_BY_KIND,
    KINDS,
    TOKEN_EXCHANGE,
    Client,
    ClientValidationError,
    validate_backchannel_logout_uri,
    validate_cors_origins,
    validate_exchange_audiences,
    validate_redirect_uri,
)
from idp.clock import Clock
from idp.crypto import Digester, random_id, random_token

log = logging.getLogger("idp.clients")

SECRET_BYTES = 32  # 256 bits
CHANNEL = "clients"
"""Ephemeral-store channel of client changes (Redis adds IDP_REDIS_PREFIX). Only idp workers subscribe:
the writer waits for one acknowledgement per receiver, so nothing else may listen here."""
ACK_TIMEOUT = 1.0
ACK_POLL = 0.002


class ClientStore(Protocol):
    def get(self, client_id: str) -> Client | None: ...
    def list(self) -> list[Client]: ...
    def save(self, client: Client) -> None: ...
    def delete(self, client_id: str) -> bool: ...


class ChangeBus(Protocol):
    """The shared ephemeral store, as far as announcing changes goes."""

    def publish(self, channel: str, message: bytes) -> int | None: ...
    def incr(self, key: str, window: float) -> int: ...
    def get(self, key: str) -> bytes | None: ...


def change_message(client_id: str) -> tuple[bytes, str]:
    """The message announcing a change of ``client_id`` and the key its receivers count their acks in."""
    ack = f"clients-ack:{secrets.token_urlsafe(12)}"
    return orjson.dumps({"client_id": client_id, "ack": ack}), ack


def parse_change(message: bytes) -> tuple[str, str] | None:
    """(client_id, ack key) of a change message; None for anything else (a shutdown wake-up)."""
    try:
        data = orjson.loads(message)
        client_id, ack = data["client_id"], data["ack"]
    except Exception:
        return None
    if not isinstance(client_id, str) or not isinstance(ack, str) or not ack.startswith("clients-ack:"):
        return None
    return client_id, ack


class ClientRegistry:
    """Lookups are cached for ``cache_seconds``; a change made through any registry invalidates them at once
    (see the module docstring). ``version``: a cheap read of the store's change counter, checked per lookup;
    ``bus``: the store shared by every worker, to announce changes on."""

    def __init__(
        self,
        store: ClientStore,
        digester: Digester,
        clock: Clock,
        *,
        issuer: str,
        api_audience: str,
        cache_seconds: float = 5.0,
        version: Callable[[], int | None] | None = None,
        bus: ChangeBus | None = None,
    ) -> None:
        self._issuer = issuer
        self._api_audience = api_audience
        self._store = store
        self._digester = digester
        self._clock = clock
        self._ttl = cache_seconds
        self._cache: dict[str, tuple[float, Client | None]] = {}
        self._lock = threading.Lock()
        self._origins: tuple[float, frozenset[str]] | None = None
        self._generation = 0  # bumped by every invalidation: a lookup that raced one does not fill the cache
        self.version = version
        self.bus = bus
        self._seen_version: int | None = None
        self.follower_loop: asyncio.AbstractEventLoop | None = None
        """The loop this process's follower (``idp.clients.changes``) acknowledges on, while it runs."""

    def get(self, client_id: str) -> Client | None:
        current = self._check_version()
        now = self._clock.now()
        hit = self._cache.get(client_id)
        if current and hit is not None and hit[0] > now:
            return hit[1]
        generation = self._generation
        # Never send NUL or control characters to the database (PostgreSQL rejects NUL in text).
        client = self._store.get(client_id) if 0 < len(client_id) <= 64 and client_id.isprintable() else None
        with self._lock:
            if generation != self._generation:
                return client  # read before a change this process has since heard of: do not keep it
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[client_id] = (now + self._ttl, client)
        return client

    def _check_version(self) -> bool:
        """Whether the cache may answer: the change counter reads as last seen, or the cache was just cleared.

        When the counter cannot be read, nothing is known: that lookup reads the store (a stale entry must not
        hide a change), but the cache and the version seen stay, so a failing read does not empty the cache for
        every other lookup; the next good read compares with the version seen before the failure."""
        if self.version is None:
            return True
        try:
            seen = self.version()
        except Exception:
            seen = None
        if seen is None:
            return False
        if seen != self._seen_version:
            with self._lock:
                self._cache.clear()
                self._forget_origins()
                self._seen_version = seen
        return True

    def cached(self, client_id: str) -> Client | None:
        """The cached, still current record, without reading the store (None: ask :meth:`get`)."""
        if not self._check_version():
            return None
        hit = self._cache.get(client_id)
        return hit[1] if hit is not None and hit[0] > self._clock.now() else None

    def peek(self, client_id: str) -> Client | None:
        """The cached record, if any, without I/O (safe on the event loop: logs and metrics)."""
        hit = self._cache.get(client_id)
        return hit[1] if hit is not None else None

    def get_active(self, client_id: str) -> Client | None:
        client = self.get(client_id)
        return client if client is not None and not client.disabled else None

    def invalidate(self, client_id: str) -> None:
        """Forget this process's copy (a change announced by another worker)."""
        with self._lock:
            self._cache.pop(client_id, None)
            self._forget_origins()

    def invalidate_all(self) -> None:
        with self._lock:
            self._cache.clear()
            self._forget_origins()

    def cors_origins(self) -> frozenset[str]:
        """Every origin some enabled client lets browsers call from (blocking on a miss; see ``peek_cors_origins``)."""
        cached = self.peek_cors_origins()
        if cached is not None:
            return cached
        generation, expires = self._generation, self._clock.now() + self._ttl
        origins = frozenset(o for cl in self._store.list() if not cl.disabled for o in cl.cors_origins)
        with self._lock:
            if generation == self._generation:  # no change arrived while listing: keep it
                self._origins = (expires, origins)
        return origins

    def _forget_origins(self) -> None:
        """Under the lock: any client's change may change the CORS origins, and a racing lookup must not refill."""
        self._generation += 1
        self._origins = None

    def peek_cors_origins(self) -> frozenset[str] | None:
        """The cached CORS origin set, or None when it must be loaded (no store I/O but the change counter's read:
        safe on the event loop with SQLite; one PostgreSQL round trip without Redis)."""
        if not self._check_version():
            return None
        hit = self._origins
        return hit[1] if hit is not None and hit[0] > self._clock.now() else None

    def changed(self, client_id: str) -> None:
        """After a change is stored: forget it here, and have every other worker forget it before returning."""
        self.invalidate(client_id)
        if self.bus is None:
            return
        message, ack = change_message(client_id)
        try:
            receivers = self.bus.publish(CHANNEL, message) or 0
        except Exception as exc:  # stored already; the others see it within the cache lifetime
            log.warning("clients: cannot announce a change (%s); other workers see it within %.0fs", exc, self._ttl)
            return
        loop = self.follower_loop
        if loop is not None and not loop.is_running():
            receivers -= 1  # this process's own follower cannot answer now, and its copy is already gone
        if receivers > 0 and not _on_event_loop():
            self._await_acks(ack, receivers)

    def _await_acks(self, ack: str, receivers: int) -> None:
        deadline = time.monotonic() + ACK_TIMEOUT
        while True:
            try:
                raw = self.bus.get(ack) if self.bus is not None else None
            except Exception:
                raw = None
            if raw is not None and int(raw) >= receivers:
                return
            if time.monotonic() >= deadline:
                got = int(raw) if raw is not None else 0
                log.warning("clients: %d of %d workers acknowledged a change within %.1fs", got, receivers, ACK_TIMEOUT)
                return
            time.sleep(ACK_POLL)

    def list(self) -> list[Client]:
        return self._store.list()

    def check_secret(self, client: Client, secret: str) -> bool:
        return self._digester.matches(secret, client.secret_digest)

    def create(
        self,
        *,
        name: str,
        kind: str,
        redirect_uris: builtins.list[str] | None = None,
        post_logout_redirect_uris: builtins.list[str] | None = None,
        scope: str = "",
        audience: str = "",
        first_party: bool = False,
        auth_method: str | None = None,
        jwks: dict[str, Any] | None = None,
        grant_types: builtins.list[str] | None = None,
        require_pkce: bool = True,
        access_token_alg: str | None = None,
        id_token_alg: str | None = None,
        allowed_cors_origins: builtins.list[str] | None = None,
        claims_in_id_token: bool = False,
        dpop_bound_access_tokens: bool = False,
        backchannel_logout_uri: str | None = None,
        backchannel_logout_session_required: bool = False,
        token_exchange_audiences: builtins.list[str] | None = None,
        client_id: str | None = None,
    ) -> tuple[Client, str | None]:
        """Returns the client and, once only, its plaintext secret (None for public/JWT clients)."""
        if kind not in KINDS:
            raise ClientValidationError(f"client type must be one of {', '.join(KINDS)}")
        if not name.strip():
            raise ClientValidationError("client name must not be empty")
        method = auth_method or ("none" if kind == "native" else "client_secret_basic")
        if method not in AUTH_METHODS:
            raise ClientValidationError(f"auth method must be one of {', '.join(AUTH_METHODS)}")
        if kind == "native" and method != "none":
            raise ClientValidationError("native clients are public (auth method none)")
        if kind != "native" and method == "none":
            raise ClientValidationError("only native clients may be public")
        if method == "private_key_jwt" and not (jwks and jwks.get("keys")):
            raise ClientValidationError("private_key_jwt needs the client's public JWKS")
        grants = grant_types or list(GRANTS_BY_KIND[kind])
        if method == "none" and "client_credentials" in grants:
            raise ClientValidationError("public clients cannot use client_credentials (RFC 6749 §4.4)")
        if method == "none" and TOKEN_EXCHANGE in grants:
            raise ClientValidationError("public clients cannot use token exchange (RFC 8693 §2.1)")
        uris = [validate_redirect_uri(u, kind) for u in (redirect_uris or [])]
        if "authorization_code" in grants and not uris:
            raise ClientValidationError("clients using the authorization code flow need a redirect URI")
        logout_uris = [validate_redirect_uri(u, "web") for u in (post_logout_redirect_uris or [])]
        self._check_audience(audience, kind, scope)
        if not require_pkce and (method == "none" or kind != "web"):
            raise ClientValidationError("only confidential web clients may go without PKCE")
        for alg in (access_token_alg, id_token_alg):
            if alg is not None and alg not in ("ES256", "RS256", "EdDSA"):
                raise ClientValidationError(f"unsupported signing algorithm {alg!r}")
        secret = random_token(SECRET_BYTES) if method in ("client_secret_basic", "client_secret_post") else None
        now = self._clock.now()
        client = Client(
            client_id=client_id or random_id(12),  # 96 bits; short: it rides in every token
            name=name.strip(),
            kind=kind,
            auth_method=method,
            secret_digest=self._digester.digest(secret) if secret else None,
            jwks=jwks,
            redirect_uris=uris,
            post_logout_redirect_uris=logout_uris,
            grant_types=grants,
            scope=" ".join(dict.fromkeys(scope.split())),
            audience=audience,
            first_party=first_party,
            require_pkce=require_pkce,
            access_token_alg=access_token_alg,
            id_token_alg=id_token_alg,
            allowed_cors_origins=validate_cors_origins(allowed_cors_origins or []),
            claims_in_id_token=bool(claims_in_id_token),
            dpop_bound_access_tokens=bool(dpop_bound_access_tokens),
            backchannel_logout_uri=validate_backchannel_logout_uri(backchannel_logout_uri),
            backchannel_logout_session_required=bool(backchannel_logout_session_required),
            token_exchange_audiences=self._exchange_audiences(token_exchange_audiences or []),
            created_at=now,
            updated_at=now,
        )
        self._store.save(client)
        self.changed(client.client_id)  # a lookup of this id may have cached "no such client"
        return client, secret

    def _check_audience(self, audience: str, kind: str, scope: str) -> None:
        """A client registered for the issuer or the admin API could introspect every user's or admin's token."""
        admin = kind == "service" and ADMIN_SCOPE in scope.split()
        for aud in audience.split():
            if reserved_audience(aud, issuer=self._issuer, api_audience=self._api_audience, admin=admin):
                raise ClientValidationError(
                    f"audience {aud[:200]!r} is reserved for the IdP itself (the issuer and URLs under it; "
                    "ISSUER/admin only for idp:admin service clients)"
                )

    def _exchange_audiences(self, audiences: builtins.list[str]) -> builtins.list[str]:
        """Token-exchange targets: https URIs outside the IdP's own URL space, or ids of registered clients.

        An exchanged token for the issuer would reach userinfo, one for ``ISSUER/admin`` the admin API: never."""
        out = validate_exchange_audiences(audiences)
        for aud in out:
            if reserved_audience(aud, issuer=self._issuer, api_audience=self._api_audience, admin=False):
                raise ClientValidationError(f"token exchange audience {aud[:200]!r} is reserved for the IdP itself")
            if ":" not in aud and self._store.get(aud) is None:
                raise ClientValidationError(f"token exchange audience {aud[:200]!r} is not a registered client")
        return out

    def rotate_secret(self, client_id: str) -> str:
        client = self._store.get(client_id)
        if client is None or client.secret_digest is None:
            raise LookupError(f"no client with a secret named {client_id!r}")
        secret = random_token(SECRET_BYTES)
        self._store.save(replace(client, secret_digest=self._digester.digest(secret), updated_at=self._clock.now()))
        self.changed(client_id)
        return secret

    UPDATABLE = frozenset(
        {"name", "redirect_uris", "post_logout_redirect_uris", "scope", "audience", "first_party", "jwks",
         "require_pkce", "access_token_alg", "id_token_alg", "disabled", "allowed_cors_origins", "claims_in_id_token",
         "dpop_bound_access_tokens", "backchannel_logout_uri", "backchannel_logout_session_required",
         "token_exchange_audiences"}
    )  # fmt: skip

    def update(self, client_id: str, **changes: Any) -> Client:
        """Change registration fields (not the type, auth method, grants or secret) under the rules of ``create``.

        Disabling and enabling go through :class:`idp.clients.admin.ClientAdmin`, which writes the deny-list entry."""
        c = self.check_update(client_id, **changes)
        self._store.save(c)
        self.changed(client_id)
        return c

    def check_update(self, client_id: str, **changes: Any) -> Client:
        """The record ``update`` would store (ClientValidationError, LookupError as it would raise), storing nothing."""
        client = self._store.get(client_id)
        if client is None:
            raise LookupError(f"no client {client_id!r}")
        unknown = set(changes) - self.UPDATABLE
        if unknown:
            raise ClientValidationError(f"cannot change {', '.join(sorted(unknown))}")
        c = replace(client, **changes)
        if not c.name.strip():
            raise ClientValidationError("client name must not be empty")
        uris = [validate_redirect_uri(u, c.kind) for u in c.redirect_uris]
        if "authorization_code" in c.grant_types and not uris:
            raise ClientValidationError("clients using the authorization code flow need a redirect URI")
        logout_uris = [validate_redirect_uri(u, "web") for u in c.post_logout_redirect_uris]
        if c.auth_method == "private_key_jwt" and not (c.jwks and c.jwks.get("keys")):
            raise ClientValidationError("private_key_jwt needs the client's public JWKS")
        self._check_audience(c.audience, c.kind, c.scope)
        if not c.require_pkce and (c.auth_method == "none" or c.kind != "web"):
            raise ClientValidationError("only confidential web clients may go without PKCE")
        for alg in (c.access_token_alg, c.id_token_alg):
            if alg is not None and alg not in ("ES256", "RS256", "EdDSA"):
                raise ClientValidationError(f"unsupported signing algorithm {alg!r}")
        c = replace(
            c,
            name=c.name.strip(),
            redirect_uris=uris,
            post_logout_redirect_uris=logout_uris,
            scope=" ".join(dict.fromkeys(c.scope.split())),
            allowed_cors_origins=validate_cors_origins(c.allowed_cors_origins),
            claims_in_id_token=bool(c.claims_in_id_token),
            dpop_bound_access_tokens=bool(c.dpop_bound_access_tokens),
            backchannel_logout_uri=validate_backchannel_logout_uri(c.backchannel_logout_uri),
            backchannel_logout_session_required=bool(c.backchannel_logout_session_required),
            token_exchange_audiences=self._exchange_audiences(c.token_exchange_audiences),
            updated_at=self._clock.now(),
        )
        return c

    def delete(self, client_id: str) -> bool:
        deleted = self._store.delete(client_id)
        self.changed(client_id)
        return deleted


def _on_event_loop() -> bool:
    """Waiting for acknowledgements here would block the loop that delivers this process's own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
