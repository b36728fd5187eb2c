"""Registered clients and the redirect-URI rules they live by."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from idp.loopback import is_loopback_host

KINDS = ("web", "native", "service")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
GRANTS_BY_KIND = {
    "web": ["authorization_code", "refresh_token"],
    "native": ["authorization_code", "refresh_token"],
    "service": ["client_credentials"],
}
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # RFC 8693 §2.1; no kind's default
# What a client may be registered for: the kinds' defaults and the grants a confidential client opts into.
GRANT_TYPES = frozenset({*(g for grants in GRANTS_BY_KIND.values() for g in grants), TOKEN_EXCHANGE})


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
    dpop_bound_access_tokens: bool = False  # RFC 9449 §5.2: a token request without a DPoP proof is refused
    backchannel_logout_uri: str | None = None  # OIDC Back-Channel Logout 1.0 §2.2: logout tokens are POSTed here
    backchannel_logout_session_required: bool = False  # §2.2: the logout token must carry `sid`
    token_exchange_audiences: list[str] = field(default_factory=list)  # RFC 8693 targets this client may ask for
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
            "dpop_bound_access_tokens": self.dpop_bound_access_tokens,
            "backchannel_logout_uri": self.backchannel_logout_uri,
            "backchannel_logout_session_required": self.backchannel_logout_session_required,
            "token_exchange_audiences": self.token_exchange_audiences,
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

        A public client's https redirect URIs name the pages it runs in; a confidential client's do not (its
        secret must not be in a browser), so only origins an operator added count for it. Loopback and
        private-use redirects name no page (any program on any machine can serve ``http://127.0.0.1``):
        a loopback origin counts only when added to ``allowed_cors_origins``.
        """
        out = list(self.allowed_cors_origins)
        if self.is_public:
            out.extend(o for o in map(page_origin_of, self.redirect_uris) if o is not None and o not in out)
        return out

    def allows_grant(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    def redirect_uri_allowed(self, uri: str) -> bool:
        """Exact string match (RFC 9700 §4.1.3); for native apps the loopback port may vary (RFC 8252 §7.3).

        Judged on the raw string: a parser that drops TAB/CR/LF or never reads the port would let
        characters into ``Location`` that no header may carry.
        """
        if not uri_chars_ok(uri):
            return False
        if uri in self.redirect_uris:
            return True
        if self.kind != "native":
            return False
        got = loopback_parts(uri)
        return got is not None and any(loopback_parts(registered) == got for registered in self.redirect_uris)

    def post_logout_redirect_uri_allowed(self, uri: str) -> bool:
        """OIDC RP-Initiated Logout 1.0 §3: registered, exact string match (no port latitude)."""
        return uri_chars_ok(uri) and uri in self.post_logout_redirect_uris


MAX_URI = 2048
_URI_CHARS = re.compile(r"[\x21-\x7e]+")  # RFC 3986 §2: printable ASCII; nothing a header cannot carry
# RFC 8252 §7.3: the loopback IP literal over http; only the port varies, and it is 1-65535 in digits.
_LOOPBACK = re.compile(r"http://(127\.0\.0\.1|\[::1\])(?::([1-9][0-9]{0,4}))?([/?][^#]*)?")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_PRIVATE_SCHEME = re.compile(r"[a-z][a-z0-9+-]*(?:\.[a-z0-9+-]+)+", re.IGNORECASE)  # RFC 8252 §7.1: reverse-domain form


def uri_chars_ok(uri: str) -> bool:
    return len(uri) <= MAX_URI and _URI_CHARS.fullmatch(uri) is not None


def loopback_parts(uri: str) -> tuple[str, str] | None:
    """(host, path and query) of a well-formed ``http://127.0.0.1[:port]/…`` or ``http://[::1][:port]/…``."""
    m = _LOOPBACK.fullmatch(uri)
    if m is None or (m[2] is not None and int(m[2]) > 65_535):
        return None
    return m[1], m[3] or ""


def _authority(uri: str, scheme: str) -> str:
    rest = uri[len(scheme) + 3 :]
    return re.split(r"[/?]", rest, maxsplit=1)[0]


def _host_port(authority: str) -> tuple[str, str | None]:
    if ":" in authority and not authority.endswith("]"):
        host, _, port = authority.rpartition(":")
        return host, port
    return authority, None


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


def page_origin_of(uri: str) -> str | None:
    """The origin of an https redirect URI on a host other than loopback (a page a public client runs in), else None."""
    origin = origin_of(uri)
    if origin is None or not origin.startswith("https://"):
        return None
    host = urlsplit(origin).hostname or ""
    if is_loopback_host(host) or host.endswith(".localhost"):  # RFC 6761 §6.3: every *.localhost is loopback
        return None
    return origin


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


MAX_EXCHANGE_AUDIENCES = 20
MAX_AUDIENCE = 300
_CLIENT_ID = re.compile(r"[A-Za-z0-9._~-]{1,64}")


def validate_exchange_audiences(audiences: list[str]) -> list[str]:
    """RFC 8693 §2.1 targets a client may exchange tokens for: each an absolute https URI (a resource server's
    API identifier; no fragment, no userinfo, printable ASCII) or a bare identifier (another client's
    ``client_id``; whether it names a registered client is the registry's check). Deduplicated, in order."""
    if not isinstance(audiences, list) or len(audiences) > MAX_EXCHANGE_AUDIENCES:
        raise ClientValidationError(f"at most {MAX_EXCHANGE_AUDIENCES} token exchange audiences")
    out: list[str] = []
    for aud in audiences:
        if not isinstance(aud, str) or not 0 < len(aud) <= MAX_AUDIENCE or not _URI_CHARS.fullmatch(aud):
            raise ClientValidationError(
                f"a token exchange audience is printable ASCII, 1-{MAX_AUDIENCE} characters, without spaces"
            )
        if ":" in aud:
            if not aud.startswith("https://") or "#" in aud or "@" in _authority(aud, "https"):
                raise ClientValidationError(
                    f"token exchange audience {aud[:200]!r} must be an https URI without userinfo or fragment"
                )
            host, port = _host_port(_authority(aud, "https"))
            if not host or not _HOST.fullmatch(host) or (port is not None and not _PORT.fullmatch(port)):
                raise ClientValidationError(f"token exchange audience {aud[:200]!r} must name a host")
        elif not _CLIENT_ID.fullmatch(aud):
            raise ClientValidationError(
                f"token exchange audience {aud[:200]!r} is neither an https URI nor a client id"
            )
        if aud not in out:
            out.append(aud)
    return out


def validate_redirect_uri(uri: str, kind: str) -> str:
    """Registration rules on the raw string: https; loopback http and private-use schemes only for
    native apps (RFC 8252 §7); no fragment, no userinfo, a real host and a valid port."""
    if len(uri) > MAX_URI:
        raise ClientValidationError(f"redirect URI must be at most {MAX_URI} characters")
    if not _URI_CHARS.fullmatch(uri):
        # RFC 3986 §2: no spaces, controls, DEL or raw non-ASCII (percent-encode; IDNs as A-labels).
        raise ClientValidationError(f"redirect URI {uri!r} must be printable ASCII without spaces")
    if "#" in uri:  # RFC 6749 §3.1.2: MUST NOT include a fragment component (an empty one included)
        raise ClientValidationError(f"redirect URI {uri!r} must not contain a fragment")
    scheme, colon, _ = uri.partition(":")
    if not colon:
        raise ClientValidationError(f"redirect URI {uri!r} must be an absolute URI")
    if scheme.lower() in ("http", "https"):
        return _validate_http(uri, scheme, kind)
    if kind == "native" and _PRIVATE_SCHEME.fullmatch(scheme):
        # RFC 8252 §7.1: private-use scheme in reverse-domain form, e.g. com.example.app:/cb
        if uri.startswith(f"{scheme}://"):
            authority = _authority(uri, scheme)
            if "@" in authority:
                raise ClientValidationError(f"redirect URI {uri!r} must not contain userinfo")
            if is_loopback_host(_host_port(authority)[0]):
                raise ClientValidationError(f"redirect URI {uri!r}: a loopback host takes http (RFC 8252 §7.3)")
        return uri
    raise ClientValidationError(
        f"redirect URI {uri!r} must be https (loopback http or a reverse-domain private-use scheme "
        "only for native clients)"
    )


def validate_backchannel_logout_uri(uri: str | None) -> str | None:
    """OIDC Back-Channel Logout 1.0 §2.2: an absolute https URI (plain http only on a loopback host, for
    development), port, path and query allowed, no fragment; the rules of a web client's redirect URI.
    None or the empty string: no back-channel logout."""
    if uri is None or uri == "":
        return None
    if not isinstance(uri, str):
        raise ClientValidationError("backchannel_logout_uri must be a string")
    try:
        return validate_redirect_uri(uri, "web")  # BCL §2.2: MUST NOT include a fragment (checked there)
    except ClientValidationError as exc:
        raise ClientValidationError(f"backchannel_logout_uri: {exc}".replace("redirect URI ", "")) from None


def _validate_http(uri: str, scheme: str, kind: str) -> str:
    if scheme not in ("http", "https") or not uri.startswith(f"{scheme}://"):
        raise ClientValidationError(f"redirect URI {uri!r} must start with https:// (lower case)")
    authority = _authority(uri, scheme)
    if "@" in authority:  # RFC 9700 §4.1.3 / RFC 3986 §3.2.1: userinfo, even an empty one, confuses parsers
        raise ClientValidationError(f"redirect URI {uri!r} must not contain userinfo")
    host, port = _host_port(authority)
    if not host or not _HOST.fullmatch(host):
        raise ClientValidationError(f"redirect URI {uri!r} must name a host")
    if port is not None and (not _PORT.fullmatch(port) or int(port) > 65_535):
        raise ClientValidationError(f"redirect URI {uri!r}: the port must be 1-65535 in digits")
    if scheme == "https":
        return uri
    if not is_loopback_host(host):
        raise ClientValidationError(f"redirect URI {uri!r} must be https (plain http only on a loopback host)")
    if kind == "native" and host.lower() == "localhost":
        # RFC 8252 §8.3: NOT RECOMMENDED; the IP literal avoids firewall and resolver surprises.
        raise ClientValidationError("use http://127.0.0.1 or http://[::1], not localhost (RFC 8252 §8.3)")
    return uri
