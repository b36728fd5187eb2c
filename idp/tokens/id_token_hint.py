"""``id_token_hint``: an ID token we signed, sent back to name the person (OIDC Core §3.1.2.1, RP-Initiated Logout §2).

Shared by the authorization endpoint and /logout so both judge a hint the same
way: our signature with a key we still hold, our issuer, ``typ`` ``JWT`` and the
claims an ID token always has. An expired token is fine (OIDC Core §3.1.2.1: the
hint may have expired); ``aud`` is returned for the caller to compare with its
``client_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from idp.keys.keyring import Keyring
from idp.tokens.jwt import TokenInvalid, verify

MAX_HINT = 8192  # jwt.MAX_TOKEN_BYTES and forms.MAX_VALUE: the longest value a request may carry


@dataclass(frozen=True)
class Hint:
    sub: str
    audiences: tuple[str, ...]
    azp: str | None
    sid: str | None


def audiences(aud: Any) -> list[str]:
    if isinstance(aud, str):
        return [aud]
    return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


def verify_hint(keyring: Keyring, hint: str, *, issuer: str, now: float) -> Hint | None:
    """The hint's subject and audiences, or None when it is not an ID token we signed. Blocking (key lookup)."""
    if not hint or len(hint) > MAX_HINT:
        return None
    try:
        _, claims = verify(
            keyring, hint, typ="JWT", issuer=issuer, audience=None,  # the caller compares aud with its client
            now=now, allow_expired=True, require=("iss", "sub", "aud", "iat"),
        )  # fmt: skip
    except TokenInvalid:
        return None
    sub, azp, sid = claims.get("sub"), claims.get("azp"), claims.get("sid")
    if not isinstance(sub, str) or not sub:
        return None
    return Hint(
        sub=sub,
        audiences=tuple(audiences(claims.get("aud"))),
        azp=azp if isinstance(azp, str) else None,
        sid=sid if isinstance(sid, str) else None,
    )
