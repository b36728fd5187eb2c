"""Errors carry their RFC code, HTTP status, a public description and a private detail.

Endpoints raise; one handler per surface renders them (JSON for the token family of
endpoints, a redirect for authorization errors that may be redirected, an HTML page
otherwise). ``detail`` is for logs only and never shown.
"""

from __future__ import annotations


def rfc_text(text: str) -> str:
    """RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E only (it also ends up in headers)."""
    return "".join(ch if " " <= ch <= "~" and ch not in '"\\' else "?" for ch in text)


class OAuthError(Exception):
    error = "server_error"
    status = 400
    allow_redirect = True

    def __init__(self, description: str = "", *, detail: str = "", status: int | None = None) -> None:
        description = rfc_text(description)
        super().__init__(description or self.error)
        self.description = description
        self.detail = detail
        if status is not None:
            self.status = status

    def body(self) -> dict[str, str]:
        out = {"error": self.error}
        if self.description:
            out["error_description"] = self.description
        return out


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    """RFC 6749 §5.2: 401 (with WWW-Authenticate when the client used an Authorization header)."""

    error = "invalid_client"
    status = 401
    allow_redirect = False


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class InvalidTarget(OAuthError):
    """RFC 8707 §2: the requested resource is not allowed for this client."""

    error = "invalid_target"


class AccessDenied(OAuthError):
    error = "access_denied"
    status = 403


class LoginRequired(OAuthError):
    error = "login_required"


class ConsentRequired(OAuthError):
    error = "consent_required"


class InvalidRedirectUri(OAuthError):
    """Unknown client or unregistered redirect URI: shown on our page, never redirected (RFC 6749 §4.1.2.1)."""

    error = "invalid_request"
    allow_redirect = False


class InvalidToken(OAuthError):
    """RFC 6750 §3.1: 401 with WWW-Authenticate: Bearer error="invalid_token"."""

    error = "invalid_token"
    status = 401


class InsufficientScope(OAuthError):
    error = "insufficient_scope"
    status = 403


class InvalidDPoPProof(OAuthError):
    """RFC 9449 §5 (token endpoint, 400) and §7.1 (resource, 401 with ``WWW-Authenticate: DPoP``)."""

    error = "invalid_dpop_proof"


class UseDPoPNonce(OAuthError):
    """RFC 9449 §8, §9: the proof must carry the server's nonce, sent in ``DPoP-Nonce`` with this error."""

    error = "use_dpop_nonce"

    def __init__(self, description: str, *, nonce: str, status: int | None = None) -> None:
        super().__init__(description, status=status)
        self.dpop_nonce = nonce


class TemporarilyUnavailable(OAuthError):
    error = "temporarily_unavailable"
    status = 503
    retry_after: int | None = None


class ServerError(OAuthError):
    error = "server_error"
    status = 500


class TooManyRequests(OAuthError):
    error = "slow_down"
    status = 429

    def __init__(self, retry_after: int, description: str = "Too many attempts; try again later.") -> None:
        super().__init__(description)
        self.retry_after = retry_after
