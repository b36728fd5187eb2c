"""Settings: one typed object read from ``IDP_*`` environment variables.

Every field is documented where it is defined; ``docs/configuration.md`` and
``.env.example`` are generated from this file. Only the composition roots (the
app, the CLI and the object graph they build) import this module: protocol code
receives plain values.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from idp.loopback import is_loopback_host

DAY = 86_400
SigningAlg = Literal["ES256", "RS256", "EdDSA"]


class ConfigError(Exception):
    """A setting is invalid. The message names the setting; the CLI exits 2."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IDP_", extra="ignore", frozen=True)

    issuer: str = Field(
        "http://127.0.0.1:8000",
        description="Issuer identifier (RFC 8414 §2): https URL without query or fragment. "
        "Plain http is accepted only for localhost/127.0.0.1 development.",
    )
    data_dir: Path = Field(Path("data"), description="Where the embedded default keeps its SQLite file.")
    database_url: str = Field(
        "",
        description="sqlite:///PATH or postgresql://USER@HOST:PORT/DB (the driver is picked here). "
        "Empty = SQLite file under IDP_DATA_DIR.",
    )
    redis_url: str = Field(
        "", description="redis://HOST:PORT/DB. Empty = in-process ephemeral store (one process only)."
    )
    redis_prefix: str = Field("idp:", description="Prefix for every Redis key and channel.")

    access_token_ttl: int = Field(600, ge=60, le=3600, description="Access token lifetime, seconds.")
    token_exchange_ttl: int = Field(
        300,
        ge=10,
        le=3600,
        description="Lifetime of a token issued by token exchange (RFC 8693), seconds; never past the subject "
        "token's own exp.",
    )
    id_token_ttl: int = Field(900, ge=60, le=86_400, description="ID token lifetime, seconds.")
    authorization_code_ttl: int = Field(60, ge=10, le=600, description="Authorization code lifetime, s.")
    refresh_idle_ttl: int = Field(30 * DAY, ge=60, description="Refresh token idle (sliding) lifetime, s.")
    refresh_absolute_ttl: int = Field(90 * DAY, ge=60, description="Refresh family absolute lifetime, s.")
    refresh_grace_seconds: int = Field(
        5,
        ge=0,
        le=60,
        description="Window in which repeating the same refresh returns the same successor "
        "(retries, several tabs); outside it, reuse revokes the family. 0 disables it.",
    )
    refresh_grace_max_uses: int = Field(3, ge=1, le=10, description="Repeats allowed inside the grace window.")
    session_idle_ttl: int = Field(30 * DAY, ge=300, description="Login session sliding lifetime, s.")
    session_absolute_ttl: int = Field(90 * DAY, ge=300, description="Login session absolute lifetime, s.")
    logout_revokes_offline: bool = Field(
        False, description="Whether ending a login session also revokes offline_access refresh grants."
    )
    backchannel_logout_timeout: float = Field(
        5.0, ge=0.5, le=30, description="Seconds a client's backchannel_logout_uri has to answer a logout token."
    )
    backchannel_logout_retry_hours: float = Field(
        24.0, gt=0, le=24 * 30,
        description="Back-channel logout tokens are retried (exponential backoff with jitter) for this long after "
        "the session ended; then the delivery is dead until an operator retries it (`idp logout deliveries`).",
    )  # fmt: skip
    backchannel_logout_per_client: int = Field(
        4, ge=1, le=64, description="Logout tokens in flight at once to one client, per server process."
    )
    backchannel_logout_concurrency: int = Field(
        32, ge=1, le=1024, description="Logout tokens in flight at once, per server process."
    )
    backchannel_logout_poll_seconds: float = Field(
        1.0, ge=0.05, le=60,
        description="How often each server looks for due logout tokens (ends in the same process wake it at once; "
        "this bounds the wait for those made by the CLI or another instance, and for retries).",
    )  # fmt: skip
    backchannel_logout_allow_private: bool = Field(
        False,
        description="Send logout tokens to clients whose backchannel_logout_uri resolves to a private, shared or "
        "link-local address (RFC 1918, ULA, RFC 6598, 169.254/16 with the cloud metadata service). Off: refused.",
    )
    backchannel_logout_allow_loopback: bool | None = Field(
        None,
        description="Send logout tokens to loopback addresses (a web app on the same machine). Unset = only for "
        "the embedded default on a loopback issuer (a developer's machine).",
    )

    access_token_alg: SigningAlg = Field("ES256", description="Default signing algorithm for access tokens.")
    id_token_alg: SigningAlg = Field("RS256", description="Default ID token algorithm (OIDC mandates RS256).")
    key_rotation_days: int = Field(30, ge=1, le=3650, description="Active keys are rotated after this age.")
    jwks_max_age: int = Field(300, ge=0, le=86_400, description="Cache-Control max-age of the JWKS, s.")
    denylist_sync_seconds: float = Field(
        0.5,
        gt=0,
        le=10,
        description="How often each worker re-reads the deny-list version from SQL (in case a pub/sub message "
        "was lost): bounds how stale its copy can be, s.",
    )
    denylist_heartbeat_seconds: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Heartbeat interval on the GET /deny-list/events stream; resource servers treat a longer "
        "silence as a broken stream, s.",
    )
    denylist_streams_per_client: int = Field(
        4,
        ge=1,
        le=1000,
        description="Open GET /deny-list/events streams one client may hold per IdP process; one more is "
        "answered 429 with Retry-After.",
    )
    denylist_max_streams: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="Open deny-list streams per IdP process (all clients); one more is answered 503 with "
        "Retry-After, so the resource server reconnects to another instance.",
    )
    kek: str = Field(
        "",
        repr=False,
        description="Key-encryption key (base64url, 32 bytes) protecting private keys at rest. "
        "Empty = read or create the 0600 file IDP_KEK_FILE.",
    )
    kek_file: Path = Field(Path("keys/kek"), description="File holding the key-encryption key.")

    client_assertion_max_lifetime: int = Field(
        3600,
        ge=60,
        le=86_400,
        description="How far ahead a private_key_jwt client assertion's exp may be, s (RFC 7523 §3 sets no bound; "
        "Authlib's default is an hour). Each jti is remembered until its exp, so longer means more replay-cache "
        "entries.",
    )
    dpop_required_for_public_clients: bool = Field(
        False,
        description="Refuse token requests from public clients (native apps, SPAs) that carry no DPoP proof "
        "(RFC 9449 §5.2 for all of them, as the per-client dpop_bound_access_tokens does for one). Off by "
        "default: public clients' refresh tokens already rotate on every use (RFC 9700 §2.2.2), and an app "
        "without a DPoP library would stop working; a public client that sends a proof gets key-bound tokens "
        "and a key-bound refresh family either way.",
    )
    dpop_bind_confidential_refresh: bool = Field(
        False,
        description="Also bind the refresh-token families of confidential clients to the key of the DPoP proof "
        "they were issued with (RFC 9449 §5: their refresh tokens are bound to the client's credentials already, "
        "so only public clients' families are bound by default).",
    )
    dpop_nonces: bool = Field(
        False,
        description="Demand a server nonce in every DPoP proof (RFC 9449 §8): a proof without a current one is "
        "answered use_dpop_nonce with the nonce in DPoP-Nonce, and successful responses carry the next one. Costs "
        "clients one extra round trip per nonce period; worth it when proofs could be made in advance (a "
        "compromised device's clock) or client clocks are unreliable. Nonces are HMACs of the time slice under a "
        "key derived from IDP_KEK, so every worker and instance agrees without shared state.",
    )
    dpop_nonce_seconds: int = Field(
        300, ge=30, le=3600, description="Nonce period: a nonce is good for its period and the next one, s."
    )
    dpop_proof_max_age: int = Field(
        300,
        ge=10,
        le=3600,
        description="How old a DPoP proof's iat may be, s (RFC 9449 §11.1); its jti is remembered that long.",
    )
    dpop_proof_future_skew: int = Field(
        60, ge=0, le=300, description="How far ahead of our clock a DPoP proof's iat may be (client clock skew), s."
    )
    dpop_replay_max_entries: int = Field(
        100_000,
        ge=1000,
        le=10_000_000,
        description="Without Redis: the most DPoP proof jtis the in-process replay cache holds. When full of live "
        "ones, proofs are refused (503), never a jti forgotten early. With Redis, every proof's jti is one key "
        "that expires with the proof.",
    )
    default_audience: str = Field(
        "", description="Audience of access tokens for clients without their own. Empty = ISSUER/api."
    )
    login_max_failures: int = Field(5, ge=1, le=100, description="Failed logins before throttling.")
    login_lockout_seconds: int = Field(60, ge=1, le=86_400, description="Back-off once throttled, s.")
    mfa_policy: Literal["off", "optional", "required", "flagged"] = Field(
        "optional",
        description="Second factors at sign-in: off (never asked, not offered), optional (asked of whoever enrolled "
        "one), required (everyone; a person without one enrols at the next sign-in), flagged (required of users "
        "carrying MFA_FLAG, optional for the rest).",
    )
    mfa_flag: str = Field(
        "admin", pattern=r"^[a-z0-9_.-]{1,64}$", description="The user flag that makes a second factor required "
        "when MFA_POLICY is flagged (`idp users flags`)."
    )  # fmt: skip
    totp_issuer_name: str = Field(
        "", max_length=100, description="The name authenticator apps show beside the account. Empty = the "
        "issuer's host name."
    )  # fmt: skip
    passkeys_enabled: bool = Field(
        True, description="Passkeys (WebAuthn): registered from the account page, used to sign in without a password "
        "or as a second factor. The relying party is the issuer: RP ID its host, origin its origin."
    )  # fmt: skip
    passkey_ceremonies_per_ip: int = Field(
        100, ge=1, le=1_000_000, description="Unfinished passkey ceremonies (a challenge each, 5 min) one client "
        "address may hold: an IPv4 address, or an IPv6 /64. A place is given back when the browser answers; beyond "
        "it the options endpoints answer 429 with Retry-After."
    )  # fmt: skip
    reauth_seconds: int = Field(
        600, ge=30, le=86_400, description="How recent the last sign-in must be to add or remove a passkey from the "
        "account page, s; older sessions confirm who they are first."
    )  # fmt: skip
    authorize_pending_per_ip: int = Field(
        100,
        ge=1,
        le=1_000_000,
        description="Live parked sign-in requests (at most 8 KiB each) one client address may have: an IPv4 "
        "address, or an IPv6 /64. A place is taken when /authorize parks a request for the login or consent page "
        "and given back when the sign-in resumes; an abandoned one holds it 10-20 min. Beyond it /authorize "
        "answers 429. The address is the TCP peer unless IDP_TRUSTED_PROXIES is set; raise the cap when many "
        "people share one address (a NAT).",
    )
    argon2_time_cost: int = Field(2, ge=2, description="Argon2id iterations (OWASP minimum 2 at 19 MiB).")
    argon2_memory_kib: int = Field(19_456, ge=19_456, description="Argon2id memory, KiB (>= 19 MiB).")
    argon2_parallelism: int = Field(1, ge=1, le=16, description="Argon2id lanes.")
    hsts: str = Field(
        "max-age=63072000; includeSubDomains",
        description="Strict-Transport-Security value (RFC 6797) sent on every response when IDP_ISSUER is https "
        "(never on an http issuer). Empty = none, e.g. when the TLS proxy adds its own.",
    )
    request_head_max_bytes: int = Field(
        16 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="`idp serve`: largest request head (request line and headers) accepted; a larger one is "
        "answered 431 and its connection closed, bytes.",
    )
    request_head_timeout: float = Field(
        10.0,
        gt=0,
        le=300,
        description="`idp serve`: a request head must be complete this long after its first byte (or after the "
        "connection opened), else the connection is closed, s.",
    )
    trusted_proxies: str = Field(
        "",
        description="`idp serve`: comma-separated proxy IPs or networks (CIDR) whose X-Forwarded-For/-Proto "
        "headers are believed (uvicorn's forwarded_allow_ips). Behind a proxy, set it: otherwise every client "
        "has the proxy's address for the per-address limits (parked sign-ins, login throttle). Empty with an "
        "https issuer logs a warning at start-up.",
    )
    demo: bool | None = Field(
        None,
        description="On the first start of an empty database, create demo clients and a demo user. "
        "Unset = only for the embedded default (SQLite, no Redis) on a loopback issuer. Their secrets are "
        "printed only in that case: set to true elsewhere, the demo is created with its secrets withheld.",
    )
    log_level: str = Field("INFO", description="Python logging level.")
    metrics_token: str = Field(
        "",
        repr=False,
        description="Static bearer token a Prometheus scraper may send to GET /metrics (besides idp:admin access "
        "tokens). Empty = admin tokens only.",
    )
    metrics_port: int = Field(
        0,
        ge=0,
        le=65_535,
        description="When set, `idp serve` also serves /metrics WITHOUT authentication on "
        "IDP_METRICS_HOST:this port (all workers merged). Keep it on a private interface. 0 = off.",
    )
    metrics_host: str = Field("127.0.0.1", description="Interface for IDP_METRICS_PORT.")

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.query or parts.fragment or not parts.netloc:
            raise ValueError("must be an absolute URL without query or fragment")
        if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback_host(parts.hostname)):
            raise ValueError("must use https (plain http only for localhost/127.0.0.1)")
        return v.rstrip("/")

    @field_validator("hsts")
    @classmethod
    def _hsts(cls, v: str) -> str:
        if v and not re.fullmatch(r"max-age=\d+(\s*;\s*(includeSubDomains|preload))*", v.strip()):
            raise ValueError('must look like "max-age=SECONDS; includeSubDomains" (RFC 6797 §6.1), or be empty')
        return v.strip()

    @field_validator("demo", mode="before")
    @classmethod
    def _demo(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v  # IDP_DEMO= (empty) is unset

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, v: str) -> str:
        if v and urlsplit(v).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be redis://HOST:PORT/DB")
        return v

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return v.upper()

    @model_validator(mode="after")
    def _lifetimes(self) -> Settings:
        if self.refresh_absolute_ttl < self.refresh_idle_ttl:
            raise ValueError("IDP_REFRESH_ABSOLUTE_TTL must be >= IDP_REFRESH_IDLE_TTL")
        if self.session_absolute_ttl < self.session_idle_ttl:
            raise ValueError("IDP_SESSION_ABSOLUTE_TTL must be >= IDP_SESSION_IDLE_TTL")
        return self

    @property
    def sqlalchemy_url(self) -> str:
        return normalise_database_url(self.database_url or f"sqlite:///{self.data_dir / 'idp.sqlite3'}")

    @property
    def audience(self) -> str:
        return self.default_audience or f"{self.issuer}/api"

    @property
    def embedded(self) -> bool:
        return not self.redis_url

    @property
    def local_trial(self) -> bool:
        """The embedded default (SQLite, in-process store) on a loopback issuer: one developer's machine."""
        return (
            self.embedded
            and self.sqlalchemy_url.startswith("sqlite")
            and is_loopback_host(urlsplit(self.issuer).hostname)
        )

    @property
    def strict_transport_security(self) -> str | None:
        """The HSTS value to send, or None: only an https issuer has one (RFC 6797 §7.2)."""
        return (self.hsts or None) if self.issuer.startswith("https://") else None

    @property
    def backchannel_logout_loopback(self) -> bool:
        allowed = self.backchannel_logout_allow_loopback
        return self.local_trial if allowed is None else allowed

    @property
    def create_demo(self) -> bool:
        return self.local_trial if self.demo is None else self.demo


def normalise_database_url(url: str) -> str:
    """Accept the plain forms and pick the driver: sqlite (stdlib), postgresql (psycopg 3)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("must look like sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
    base = scheme.split("+", 1)[0]
    if base == "sqlite":
        return f"sqlite+pysqlite://{rest}"
    if base in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    raise ValueError(f"unsupported database scheme {scheme!r} (use sqlite or postgresql)")


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; raise ConfigError with one line naming the setting."""
    try:
        settings = Settings(**overrides)
        _ = settings.sqlalchemy_url
        return settings
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = err.get("loc") or ()
        name = f"IDP_{str(loc[0]).upper()}" if loc else "settings"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        raise ConfigError(f"{name}: {msg}") from None
    except ValueError as exc:
        raise ConfigError(f"IDP_DATABASE_URL: {exc}") from None
