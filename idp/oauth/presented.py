"""A token a client hands back to the AS (introspection, revocation): which kind to try, and our JWT check."""

from __future__ import annotations

from typing import Any

from idp.clock import Clock
from idp.keys.keyring import Keyring
from idp.tokens import jwt
from idp.tokens.access import ACCEPTED_TYP, REQUIRED

ACCESS, REFRESH = "access_token", "refresh_token"


def try_order(hint: str | None) -> tuple[str, str]:
    """The hint picks what to try first, never what to try only (RFC 7009 §2.1 / RFC 7662 §2.1)."""
    return (REFRESH, ACCESS) if hint == REFRESH else (ACCESS, REFRESH)


def verified_access_token(
    keyring: Keyring, token: str, *, issuer: str, clock: Clock, allow_expired: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of one of our access tokens, whatever its audience; TokenInvalid otherwise."""
    return jwt.verify(
        keyring,
        token,
        typ=ACCEPTED_TYP,  # RFC 8725 §3.11: an ID token or logout token is not an access token
        issuer=issuer,
        audience=None,  # the AS answers for every audience; who may ask is checked by the caller
        now=clock.now(),
        require=REQUIRED,
        allow_expired=allow_expired,
    )
