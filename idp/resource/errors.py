"""The refusal every part of ``idp.resource`` raises, in RFC 6750 §3 / RFC 9449 §7.1 terms."""

from __future__ import annotations


class AuthError(Exception):
    """Refusal of a request; ``description`` is safe to send.

    ``scheme`` names the challenge the error belongs to: ``Bearer`` (RFC 6750 §3) or ``DPoP``
    (RFC 9449 §7.1, for a request made with the DPoP scheme). ``nonce`` is a server nonce to
    hand the client in a ``DPoP-Nonce`` header (RFC 9449 §9). ``acr_values`` and ``max_age`` tell
    the client what authentication to ask the authorization server for (RFC 9470 §3).
    """

    def __init__(
        self,
        status: int,
        error: str | None,
        description: str = "",
        scope: str | None = None,
        *,
        scheme: str = "Bearer",
        nonce: str | None = None,
        acr_values: str | None = None,
        max_age: int | None = None,
    ) -> None:
        super().__init__(description or error or "unauthorized")
        self.status = status
        self.error = error
        self.description = description
        self.scope = scope
        self.scheme = scheme
        self.nonce = nonce
        self.acr_values = acr_values  # RFC 9470 §3: what the client should ask the authorization server for
        self.max_age = max_age
