"""The client registry: creation with generated credentials, cached lookup, secret checks."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any, Protocol

from idp.clients.audiences import ADMIN_SCOPE, reserved_audience
from idp.clients.model import (
    AUTH_METHODS,
    GRANTS_BY_KIND,
    KINDS,
    Client,
    ClientValidationError,
    validate_cors_origins,
    validate_redirect_uri,
)
from idp.clock import Clock
from idp.crypto import Digester, random_id, random_token

SECRET_BYTES = 32  # 256 bits


class ClientStore(Protocol):
    def get(self, client_id: str) -> Client | None: ...
    def list(self) -> list[Client]: ...
    def save(self, client: Client) -> None: ...
    def delete(self, client_id: str) -> bool: ...


class ClientRegistry:
    """Lookups are cached for ``cache_seconds`` (a changed client takes effect within that bound)."""

    def __init__(
        self,
        store: ClientStore,
        digester: Digester,
        clock: Clock,
        *,
        issuer: str,
        api_audience: str,
        cache_seconds: float = 5.0,
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
        self._origins_generation = 0

    def get(self, client_id: str) -> Client | None:
        now = self._clock.now()
        hit = self._cache.get(client_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        # Never send NUL or control characters to the database (PostgreSQL rejects NUL in text).
        client = self._store.get(client_id) if 0 < len(client_id) <= 64 and client_id.isprintable() else None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[client_id] = (now + self._ttl, client)
        return client

    def peek(self, client_id: str) -> Client | None:
        """The cached record, if any, without I/O (safe on the event loop: logs and metrics)."""
        hit = self._cache.get(client_id)
        return hit[1] if hit is not None else None

    def get_active(self, client_id: str) -> Client | None:
        client = self.get(client_id)
        return client if client is not None and not client.disabled else None

    def invalidate(self, client_id: str) -> None:
        self._cache.pop(client_id, None)
        self._forget_origins()

    def cors_origins(self) -> frozenset[str]:
        """Every origin some enabled client lets browsers call from (blocking on a miss; see ``peek_cors_origins``)."""
        cached = self.peek_cors_origins()
        if cached is not None:
            return cached
        generation, expires = self._origins_generation, self._clock.now() + self._ttl
        origins = frozenset(o for cl in self._store.list() if not cl.disabled for o in cl.cors_origins)
        with self._lock:
            if generation == self._origins_generation:  # no change arrived while listing: keep it
                self._origins = (expires, origins)
        return origins

    def _forget_origins(self) -> None:
        """Any client's change may change the CORS origins."""
        with self._lock:
            self._origins_generation += 1
            self._origins = None

    def peek_cors_origins(self) -> frozenset[str] | None:
        """The cached CORS origin set, or None when it must be loaded (no I/O: safe on the event loop)."""
        hit = self._origins
        return hit[1] if hit is not None and hit[0] > self._clock.now() else None

    def list(self) -> list[Client]:
        return self._store.list()

    def check_secret(self, client: Client, secret: str) -> bool:
        return self._digester.matches(secret, client.secret_digest)

    def create(
        self,
        *,
        name: str,
        kind: str,
        redirect_uris: list[str] | None = None,
        post_logout_redirect_uris: list[str] | None = None,
        scope: str = "",
        audience: str = "",
        first_party: bool = False,
        auth_method: str | None = None,
        jwks: dict[str, Any] | None = None,
        grant_types: list[str] | None = None,
        require_pkce: bool = True,
        access_token_alg: str | None = None,
        id_token_alg: str | None = None,
        allowed_cors_origins: list[str] | None = None,
        claims_in_id_token: bool = False,
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
            created_at=now,
            updated_at=now,
        )
        self._store.save(client)
        self._forget_origins()
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

    def rotate_secret(self, client_id: str) -> str:
        client = self._store.get(client_id)
        if client is None or client.secret_digest is None:
            raise LookupError(f"no client with a secret named {client_id!r}")
        secret = random_token(SECRET_BYTES)
        self._store.save(replace(client, secret_digest=self._digester.digest(secret), updated_at=self._clock.now()))
        self.invalidate(client_id)
        return secret

    UPDATABLE = frozenset(
        {"name", "redirect_uris", "post_logout_redirect_uris", "scope", "audience", "first_party", "jwks",
         "require_pkce", "access_token_alg", "id_token_alg", "disabled", "allowed_cors_origins", "claims_in_id_token"}
    )  # fmt: skip

    def update(self, client_id: str, **changes: Any) -> Client:
        """Change registration fields (not the type, auth method, grants or secret) under the rules of ``create``."""
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
            updated_at=self._clock.now(),
        )
        self._store.save(c)
        self.invalidate(client_id)
        return c

    def set_disabled(self, client_id: str, disabled: bool) -> None:
        client = self._store.get(client_id)
        if client is None:
            raise LookupError(f"no client {client_id!r}")
        self._store.save(replace(client, disabled=disabled, updated_at=self._clock.now()))
        self.invalidate(client_id)

    def delete(self, client_id: str) -> bool:
        self.invalidate(client_id)
        return self._store.delete(client_id)
