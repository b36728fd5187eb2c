"""Deny-list changes as RFC 8417 Security Event Tokens.

Each change of the deny-list is one SET, signed by the IdP with ``typ: secevent+jwt``
(RFC 8417 §2.3), carried by the ``/deny-list/events`` stream and, with Redis, published
on the channel ``{IDP_REDIS_PREFIX}deny-list`` (``idp:deny-list`` by default) for
consumers inside the cluster. The payload::

    {"iss": ISSUER, "iat": 1700000000, "jti": "...",
     "events": {"https://schemas.idp.dev/event/deny":
                   {"version": 12, "op": "add",
                    "entry": {"id": 12, "kind": "subject", "value": "u_123",
                              "not_before": 1699999999.0, "expires_at": 1700000700.0}}}}

A removal carries ``{"version": 13, "op": "remove", "id": 12}`` under the same URI. (Empty
messages on the channel are wake-ups an instance sends itself at shutdown: ignore them.) SETs
describe something that already happened and carry no ``exp``; consumers order them by
``version`` and ignore versions they already hold, so a replayed SET changes nothing.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from idp.crypto import b64url_decode
from idp.denylist.entries import DenyChange

SET_TYP = "secevent+jwt"
EVENT_DENY = "https://schemas.idp.dev/event/deny"
CHANNEL = "deny-list"
"""Ephemeral-store channel; Redis adds IDP_REDIS_PREFIX, so in-cluster consumers SUBSCRIBE ``idp:deny-list``."""


def set_claims(change: DenyChange, *, issuer: str, now: float) -> dict[str, Any]:
    return {
        "iss": issuer,
        "iat": int(now),
        "jti": secrets.token_urlsafe(12),
        "events": {EVENT_DENY: change.public()},
    }


def change_from_claims(claims: dict[str, Any]) -> DenyChange:
    """The deny change a (verified) SET carries; ValueError when it carries none."""
    events = claims.get("events")
    if not isinstance(events, dict) or EVENT_DENY not in events:
        raise ValueError("not a deny-list event")
    return DenyChange.from_public(events[EVENT_DENY])


def peek_version(token: str | bytes) -> int | None:
    """The version a SET announces, unverified: only for skipping one a process already holds (or deciding
    to read SQL), never for applying it. None when it is not a deny-list SET."""
    try:
        text = token.decode("ascii") if isinstance(token, bytes) else token
        claims = orjson.loads(b64url_decode(text.split(".")[1]))
        return int(claims["events"][EVENT_DENY]["version"])
    except Exception:
        return None
