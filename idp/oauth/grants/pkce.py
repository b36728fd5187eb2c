"""PKCE (RFC 7636), hardened: S256 only, required by default, downgrade-proof both ways.

``plain`` is refused and a missing challenge is not a skipped check. The authorization side
(:func:`check_challenge`) and the token side (:func:`verify`, called by the code grant) share
the rules.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from idp.clients.model import Client
from idp.crypto import b64url
from idp.errors import InvalidGrant, InvalidRequest

VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")  # RFC 7636 §4.1
CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")  # RFC 7636 §4.2: BASE64URL(SHA256) is 43 characters


def s256(verifier: str) -> str:
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def check_challenge(client: Client, params: dict[str, str]) -> tuple[str | None, str | None]:
    """Validate the authorization request's PKCE parameters; returns (challenge, method) to bind to the code."""
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if challenge is None:
        if method is not None:
            raise InvalidRequest("code_challenge_method without code_challenge")
        # RFC 9700 §2.1.1: PKCE for every client; only a confidential web client registered without it and
        # proving freshness with an OIDC nonce may skip it (OAuth 2.1 §7.5.1), never a public one.
        oidc = "openid" in params.get("scope", "").split() and "nonce" in params
        exempt = not client.require_pkce and not client.is_public and client.kind == "web" and oidc
        if not exempt:
            raise InvalidRequest("code_challenge is required (PKCE with S256)")
        return None, None
    if method != "S256":  # RFC 7636 §4.3 defaults to plain when omitted; plain is refused (RFC 9700 §2.1.1)
        raise InvalidRequest("code_challenge_method must be S256")
    if not CHALLENGE.match(challenge):
        raise InvalidRequest("malformed code_challenge")
    return challenge, method


def verify(challenge: str | None, method: str | None, verifier: str | None) -> None:
    """Token side. RFC 7636 §4.6 and the RFC 9700 §4.8.2 downgrade defence."""
    if challenge is None:
        if verifier is not None:
            raise InvalidGrant("code_verifier sent for a code issued without code_challenge")  # RFC 9700 §4.8.2
        return
    if verifier is None:
        raise InvalidGrant("code_verifier is required for this code")  # RFC 7636 §4.5
    if not VERIFIER.match(verifier):
        raise InvalidRequest("malformed code_verifier")  # RFC 7636 §4.1: 43-128 unreserved characters
    if method != "S256" or not hmac.compare_digest(s256(verifier), challenge):
        raise InvalidGrant("code_verifier does not match the code_challenge")  # RFC 7636 §4.6
