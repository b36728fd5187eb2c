"""The BFF's settings: one typed object read from ``IDP_BFF_*`` environment variables (or given by the CLI).

Upstreams are written one per ``--upstream`` option (or in ``IDP_BFF_UPSTREAMS``, separated by whitespace or
commas), each ``PREFIX=URL[;OPTION=VALUE]...``:

* ``/api=http://127.0.0.1:9001`` forwards ``/api/...`` to that URL with the session's own access token;
* ``/orders=http://127.0.0.1:9002;exchange=https://orders.example`` exchanges the session's token (RFC 8693)
  for one whose audience is ``https://orders.example`` before forwarding;
* ``/reports=https://reports.internal;audience=https://reports.example`` forwards and names the audience the
  forwarded token is meant for (the proxy may refuse to forward a token without it).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from idp.bff.paths import unsafe_segments
from idp.crypto import b64url_decode
from idp.loopback import is_loopback_host

HOST_PREFIX = "__Host-"
UpstreamMode = Literal["forward", "exchange"]
_PREFIX = re.compile(r"/[A-Za-z0-9._~\-/]*")


class BffConfigError(ValueError):
    """A BFF setting is invalid; the message names it."""


@dataclass(frozen=True, slots=True)
class Upstream:
    """An API the BFF proxies: requests under ``prefix`` go to ``url`` with an access token for ``audience``.
    Checked when made (settings, CLI, or code that builds one): a bad upstream never reaches the proxy."""

    prefix: str  # "/api": a path prefix without a trailing slash
    url: str  # "http://127.0.0.1:9001": where the rest of the path is appended
    mode: UpstreamMode = "forward"  # forward the session's token, or exchange it for one per audience
    audience: str | None = None  # the resource (RFC 8707) the token is for; required with exchange

    def __post_init__(self) -> None:
        prefix_ok = _PREFIX.fullmatch(self.prefix) and not unsafe_segments(self.prefix)
        if not prefix_ok or self.prefix.endswith("/") or "//" in self.prefix:
            raise BffConfigError(f"upstream prefix {self.prefix!r}: a path like /api, no trailing slash or dot segment")
        if self.prefix.startswith("/bff"):
            raise BffConfigError(f"upstream prefix {self.prefix!r}: /bff is the BFF's own")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise BffConfigError(f"upstream URL {self.url!r}: an http(s) URL without query or fragment")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise BffConfigError(f"upstream URL {self.url!r}: plain http only to a loopback host")
        if self.mode not in ("forward", "exchange"):
            raise BffConfigError(f"upstream mode {self.mode!r}: forward or exchange")
        if self.mode == "exchange" and not self.audience:
            raise BffConfigError(f"upstream {self.prefix}: exchange needs an audience")


def parse_upstream(spec: str) -> Upstream:
    """``PREFIX=URL[;exchange=AUDIENCE|;audience=AUDIENCE|;mode=forward|exchange]`` → :class:`Upstream`."""
    head, *options = spec.strip().split(";")
    prefix, sep, url = head.partition("=")
    if not sep:
        raise BffConfigError(f"upstream {spec!r}: PREFIX=URL")
    mode: str = "forward"
    audience: str | None = None
    for option in options:
        name, sep, value = option.strip().partition("=")
        if not sep or not value:
            raise BffConfigError(f"upstream {spec!r}: option {option!r} is not NAME=VALUE")
        if name == "exchange":
            mode, audience = "exchange", value
        elif name == "audience":
            audience = value
        elif name == "mode":
            mode = value
        else:
            raise BffConfigError(f"upstream {spec!r}: unknown option {name!r} (exchange, audience, mode)")
    return Upstream(prefix.strip().rstrip("/") or "/", url.strip().rstrip("/"), mode, audience)  # type: ignore[arg-type]


def decode_key(value: str) -> bytes:
    """The encryption key: base64url (canonical, unpadded or padded) of exactly 32 bytes."""
    try:
        raw = b64url_decode(value.strip().rstrip("="))
    except (ValueError, binascii.Error):
        raise BffConfigError("IDP_BFF_ENCRYPTION_KEY: not base64url") from None
    if len(raw) != 32:
        raise BffConfigError("IDP_BFF_ENCRYPTION_KEY: must decode to 32 bytes (AES-256)")
    return raw


def new_key() -> str:
    """A fresh encryption key, as the setting takes it."""
    import secrets

    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def _origin_ok(origin: str) -> bool:
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        return False
    if parts.query or parts.fragment or parts.username or parts.password:
        return False
    return parts.scheme == "https" or is_loopback_host(parts.hostname)


class BffSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IDP_BFF_", extra="ignore", frozen=True)

    issuer: str = Field("http://127.0.0.1:8000", description="idp's issuer; its discovery document is read.")
    client_id: str = Field("", description="The BFF's client_id at idp (a confidential web client).")
    client_secret: str = Field("", description="Its client secret (client_secret_basic).")
    origin: str = Field(
        "http://127.0.0.1:8080",
        description="The BFF's public origin (scheme://host[:port]), the SPA's too: redirect_uri is "
        "ORIGIN/bff/callback, post_logout_redirect_uri ORIGIN/. https, or http on a loopback host.",
    )
    scopes: str = Field("openid profile email offline_access", description="Scopes asked for at sign-in.")
    cookie_name: str = Field(
        "__Host-bff",
        description="Session cookie name. Must start with __Host- (no Domain, Path=/, Secure) unless dev is set.",
    )
    same_site: Literal["lax", "strict"] = Field(
        "lax", description="SameSite of the session cookie: lax (the redirect back from idp carries it) or strict."
    )
    session_lifetime: int = Field(8 * 3600, ge=60, description="Absolute session lifetime, seconds.")
    idle_timeout: int = Field(
        3600, ge=60, description="A session unused this long ends (sliding), seconds; at most the lifetime."
    )
    store_url: str = Field(
        "memory://",
        description="Where sessions live: memory:// (one process), sqlite:///PATH, postgresql://USER@HOST/DB, "
        "redis://HOST:PORT/DB.",
    )
    store_prefix: str = Field("bff:", description="Prefix of every Redis key (Redis store only).")
    encryption_key: str = Field(
        "",
        description="base64url of 32 random bytes: tokens are sealed with AES-256-GCM under it and session ids "
        "digested with HMAC-SHA256. Required unless dev is set (then a random key per start).",
    )
    upstreams: Annotated[tuple[Upstream, ...], NoDecode] = Field(
        (), description="APIs proxied: PREFIX=URL[;exchange=AUDIENCE|;audience=AUDIENCE] (docs/bff.md)."
    )
    dev: bool = Field(
        False,
        description="Development on a loopback origin: allows a cookie name without __Host- and a missing "
        "encryption key (sessions do not survive a restart).",
    )
    login_ttl: int = Field(600, ge=60, le=3600, description="How long a sign-in round trip may take, seconds.")
    login_pending_per_ip: int = Field(
        100,
        ge=1,
        le=1_000_000,
        description="Sign-ins under way (a server-side record of at most 4 KiB each) one client address may have: "
        "an IPv4 address, or an IPv6 /64. A place is taken by GET /bff/login and given back by the callback; an "
        "abandoned one holds it one to two login TTLs. Beyond it /bff/login answers 429 with Retry-After. The "
        "address is the TCP peer as the ASGI server reports it; raise the cap when many people share one (a NAT).",
    )

    @field_validator("upstreams", mode="before")
    @classmethod
    def _upstreams(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v for v in re.split(r"[\s,]+", value) if v]
        if isinstance(value, list | tuple):
            return tuple(v if isinstance(v, Upstream) else parse_upstream(str(v)) for v in value)
        return value

    @model_validator(mode="after")
    def _check(self) -> BffSettings:
        origin_host = urlsplit(self.origin).hostname or ""
        loopback = is_loopback_host(origin_host)
        if not _origin_ok(self.origin):
            raise BffConfigError("IDP_BFF_ORIGIN: https://host[:port] (plain http only on a loopback host)")
        issuer = urlsplit(self.issuer)
        if not (issuer.scheme == "https" or (issuer.scheme == "http" and is_loopback_host(issuer.hostname))):
            raise BffConfigError("IDP_BFF_ISSUER: an https URL (plain http only on a loopback host)")
        if not self.cookie_name.startswith(HOST_PREFIX) and not (self.dev and loopback):
            # RFC 6265bis §4.1.3.2: __Host- makes the browser refuse the cookie without Secure, with a Domain,
            # or with a Path other than /, so a sibling subdomain cannot plant or shadow it.
            raise BffConfigError("IDP_BFF_COOKIE_NAME: must start with __Host- (dev on a loopback origin excepted)")
        if not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", self.cookie_name):
            raise BffConfigError("IDP_BFF_COOKIE_NAME: not a cookie name token")
        if self.idle_timeout > self.session_lifetime:
            raise BffConfigError("IDP_BFF_IDLE_TIMEOUT: at most IDP_BFF_SESSION_LIFETIME")
        if self.encryption_key:
            decode_key(self.encryption_key)
        elif not self.dev:
            raise BffConfigError("IDP_BFF_ENCRYPTION_KEY is required (tokens are encrypted at rest)")
        if self.dev and not loopback:
            raise BffConfigError("IDP_BFF_DEV: only with a loopback origin")
        scheme = self.store_url.split(":", 1)[0]
        if scheme not in ("memory", "sqlite", "postgresql", "postgres", "redis", "rediss"):
            raise BffConfigError("IDP_BFF_STORE_URL: memory://, sqlite:///PATH, postgresql://..., redis://...")
        if "openid" not in self.scopes.split():
            raise BffConfigError("IDP_BFF_SCOPES: must include openid")
        return self

    @property
    def redirect_uri(self) -> str:
        return self.origin.rstrip("/") + "/bff/callback"

    @property
    def post_logout_redirect_uri(self) -> str:
        return self.origin.rstrip("/") + "/"

    @property
    def secure_cookie(self) -> bool:
        """Secure on every cookie except a dev cookie on plain http loopback (a browser would drop it)."""
        return self.cookie_name.startswith(HOST_PREFIX) or self.origin.startswith("https://")

    @property
    def login_cookie_name(self) -> str:
        return self.cookie_name + "-login"

    def key(self) -> bytes:
        """The 32-byte key (a random one per process in dev mode without a key)."""
        if self.encryption_key:
            return decode_key(self.encryption_key)
        return _dev_key()


_DEV_KEY: list[bytes] = []


def _dev_key() -> bytes:
    if not _DEV_KEY:
        import secrets

        _DEV_KEY.append(secrets.token_bytes(32))
    return _DEV_KEY[0]


def load_bff_settings(**overrides: Any) -> BffSettings:
    """Settings from the environment, ``overrides`` winning; BffConfigError with the setting named."""
    from pydantic import ValidationError

    try:
        return BffSettings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        cause = first.get("ctx", {}).get("error")
        if isinstance(cause, BffConfigError):
            raise cause from None
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise BffConfigError(f"IDP_BFF_{where.upper()}: {first.get('msg')}") from None
