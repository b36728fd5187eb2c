"""The person's claims a scope grants (OIDC Core §5.4), for userinfo and, when a client asks, the ID token."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from idp.clients.model import Client
from idp.users.directory import User


def scope_claims(user: User, scopes: Iterable[str]) -> dict[str, Any]:
    """``profile`` -> ``preferred_username``, ``name``; ``email`` -> ``email``, ``email_verified``. No ``sub``."""
    granted = set(scopes)
    out: dict[str, Any] = {}
    if "profile" in granted:
        out["preferred_username"] = user.username
        if user.name:
            out["name"] = user.name
    if "email" in granted and user.email:
        out["email"] = user.email
        out["email_verified"] = bool(user.email_verified)
    return out


def id_token_claims(client: Client, user: User, scopes: Iterable[str]) -> dict[str, Any] | None:
    """What the ID token carries besides the protocol claims: nothing unless the client opted in.

    OIDC Core §5.4: with an access token issued, profile and email claims are returned from userinfo;
    many web-app middlewares read ``name`` and ``email`` from the ID token alone, hence the option.
    """
    if not client.claims_in_id_token:
        return None
    return scope_claims(user, scopes) or None
