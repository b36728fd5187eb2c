"""Registered clients and the redirect-URI rules they live by."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from idp.config import is_loopback_host

KINDS = ("web", "native", "service")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
GRANTS_BY_KIND = {
    "web": ["authorization_code", "refresh_token"],
    "native": ["authorization_code", "refresh_token"],
    "service": ["client_credentials"],
}


DEFAULT_PORTS = {"https": 443, "http": 80}


class ClientValidationError(ValueError):
    pass


@dataclass
class Client:
    client_id: str
    name: str
    kind: str
    auth_method: str
    secret_digest: bytes | None = None
    jwks: dict[str, Any] | None = None
    redirect_uris: list[str] = field(default_factory=list)
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    grant_types: list[str] = field(default_factory=list)
    scope: str = ""
    audience: str = ""
    first_party: bool = False
    require_pkce: bool = True
    access_token_alg: str | None = None
    id_token_alg: str | None = None
    disabled: bool = False
    allowed_cors_origins: list[str] = field(default_factory=list)  # beyond those of a public client's redirects
    claims_in_id_token: bool = False  # the granted profile/email claims also in the ID token (OIDC Core §5.4)
    created_at: float = 0.0
    updated_at: float = 0.0

    def public_view(self) -> dict[str, Any]:
        """Everything but the secret digest (CLI output and the admin API)."""
        return {
            "client_id": self.client_id,
            "name": self.name,
            "type": self.kind,
            "auth_method": self.auth_method,
            "redirect_uris": self.redirect_uris,
            "post_logout_redirect_uris": self.post_logout_redirect_uris,
            "grant_types": self.grant_types,
            "scope": self.scope,
            "audience": self.audience,
            "first_party": self.first_party,
            "require_pkce": self.require_pkce,
            "access_token_alg": self.access_token_alg,
            "id_token_alg": self.id_token_alg,
            "jwks": self.jwks,
            "disabled": self.disabled,
            "allowed_cors_origins": self.allowed_cors_origins,
            "claims_in_id_token": self.claims_in_id_token,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    @property
    def is_public(self) -> bool:
        return self.auth_method == "none"

    @property
    def scopes(self) -> list[str]:
        return self.scope.split()

    @property
    def cors_origins(self) -> list[str]:
        """Origins whose browsers may call the token, userinfo, revocation and introspection endpoints.

        A public client's redirect URIs name the pages it runs in; a confidential client's do not (its
        secret must not be in a browser), so only origins an operator added count for it.
        """
        out = list(self.allowed_cors_origins)
        if self.is_public:
            out.extend(o for o in map(origin_of, self.redirect_uris) if o is not None)
        return out

    def allows_grant(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    def redirect_uri_allowed(self, uri: str) -> bool:
        """Exact string match (RFC 9700 §4.1.3); loopback ports vary for native apps (RFC 8252 §7.3)."""
        if uri in self.redirect_uris:
            return True
        if self.kind != "native":
            return False
        got = urlsplit(uri)
        if got.scheme != "http" or got.hostname not in ("127.0.0.1", "::1") or got.username or got.password:
            return False
        for registered in self.redirect_uris:
            reg = urlsplit(registered)
            if (
                reg.scheme == "http"
                and reg.hostname == got.hostname
                and reg.path == got.path
                and reg.query == got.query
                and not got.fragment
            ):
                return True
        return False


def origin_of(uri: str) -> str | None:
    """The serialised origin of an http(s) URI as browsers send it (RFC 6454 §6.2), else None."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != DEFAULT_PORTS[scheme] else "")


MAX_CORS_ORIGINS = 20


def validate_cors_origins(origins: list[str]) -> list[str]:
    """Extra CORS origins: ``scheme://host[:port]`` only, https or loopback http; stored as browsers send them."""
    if len(origins) > MAX_CORS_ORIGINS:
        raise ClientValidationError(f"at most {MAX_CORS_ORIGINS} CORS origins")
    out: list[str] = []
    for origin in origins:
        if not isinstance(origin, str) or len(origin) > 300:
            raise ClientValidationError("a CORS origin must be a string of at most 300 characters")
        parts = urlsplit(origin)
        normal = origin_of(origin)
        if normal is None or parts.path or parts.query or parts.fragment or "#" in origin or "?" in origin:
            raise ClientValidationError(
                f"CORS origin {origin!r} must be scheme://host[:port], without a path (e.g. https://app.example)"
            )
        if parts.username or parts.password:
            raise ClientValidationError(f"CORS origin {origin!r} must not contain userinfo")
        if parts.scheme.lower() == "http" and not is_loopback_host(parts.hostname):
            raise ClientValidationError(f"CORS origin {origin!r} must be https (plain http only for loopback)")
        if normal not in out:
            out.append(normal)
    return out


def validate_redirect_uri(uri: str, kind: str) -> str:
    """Registration rules: https; loopback http and private-use schemes only for native apps (RFC 8252 §7)."""
    parts = urlsplit(uri)
    if parts.fragment or "#" in uri:
        raise ClientValidationError(f"redirect URI {uri!r} must not contain a fragment")
    if parts.scheme == "https" and parts.netloc:
        if parts.username or parts.password:
            raise ClientValidationError(f"redirect URI {uri!r} must not contain userinfo")
        return uri
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        if kind == "native" and parts.hostname == "localhost":
            # RFC 8252 §8.3: NOT RECOMMENDED; the IP literal avoids firewall and resolver surprises.
            raise ClientValidationError("use http://127.0.0.1 or http://[::1], not localhost (RFC 8252 §8.3)")
        return uri
    if kind == "native" and parts.scheme and "." in parts.scheme and parts.scheme not in ("http", "https"):
        # RFC 8252 §7.1: private-use scheme in reverse-domain form, e.g. com.example.app:/cb
        return uri
    raise ClientValidationError(
        f"redirect URI {uri!r} must be https (loopback http or a reverse-domain private-use scheme "
        "only for native clients)"
    )
