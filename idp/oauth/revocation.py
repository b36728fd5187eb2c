"""RFC 7009 token revocation: what revoking a token a client hands back does.

* An access token (our JWT) is deny-listed by ``jti`` until its ``exp``; resource servers
  following the deny-list refuse it within about a second.
* A refresh token revokes its whole grant (family) and deny-lists the family's live
  access tokens (RFC 7009 §2.1 "SHOULD also invalidate all access tokens based on the
  same authorization grant").
* ``token_type_hint`` only decides which kind is tried first; the other is tried too, and
  an unknown hint is ignored (§2.1).
* A token that is unknown, invalid, expired or already revoked changes nothing (the endpoint
  answers 200 whatever happened, §2.2). So does a token issued to another client, which is
  left untouched: revoking only your own tokens, without telling a caller whether someone
  else's string is a live token. That attempt is audited (``token.revoke_refused``).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from idp.clients.model import Client
from idp.clock import Clock
from idp.keys.keyring import Keyring
from idp.oauth.presented import ACCESS, REFRESH, try_order, verified_access_token
from idp.tokens import jwt

Outcome = Literal["revoked-access", "revoked-refresh", "foreign", "expired", "unknown"]


class RefreshRevoker(Protocol):
    def revoke_by_refresh_token(self, token: str, *, client_id: str, actor: str) -> str | None:
        """Revoke the token's family if ``client_id`` owns it; the owner, or None when unknown."""
        ...


class JtiDenier(Protocol):
    def deny(self, kind: str, value: str, *, reason: str, actor: str, until: float | None = None) -> Any: ...


class Audit(Protocol):
    def record(self, action: str, *, actor: str = ..., client_id: str | None = ..., **detail: Any) -> None: ...


class Revocation:
    def __init__(
        self,
        *,
        keyring: Keyring,
        clock: Clock,
        issuer: str,
        grants: RefreshRevoker,
        denylist: JtiDenier,
        audit: Audit,
    ) -> None:
        self._keyring = keyring
        self._clock = clock
        self._issuer = issuer
        self._grants = grants
        self._denylist = denylist
        self._audit = audit

    def revoke(self, client: Client, token: str, hint: str | None) -> Outcome:
        """What happened, for tests and logs; ``client`` is authenticated (or a public client identified)."""
        actor = f"client:{client.client_id}"
        for kind in try_order(hint):
            if kind == ACCESS:
                if token.count(".") != 2:
                    continue
                try:
                    _, claims = verified_access_token(
                        self._keyring, token, issuer=self._issuer, clock=self._clock, allow_expired=True
                    )
                except jwt.TokenInvalid:
                    continue
                if claims["client_id"] != client.client_id:  # RFC 7009 §2.1: only tokens issued to the caller
                    return self._refused(client, ACCESS, claims.get("client_id"))
                if claims["exp"] <= self._clock.now() - jwt.LEEWAY:
                    return "expired"
                self._denylist.deny(
                    "jti", str(claims["jti"]), reason="revoked by client", actor=actor, until=claims["exp"]
                )
                return "revoked-access"
            # Found, checked and revoked in one transaction; another client's token is left as it is.
            owner = self._grants.revoke_by_refresh_token(token, client_id=client.client_id, actor=actor)
            if owner is None:
                continue
            if owner != client.client_id:  # RFC 6749 §6 / RFC 7009 §2.1: bound to its client
                return self._refused(client, REFRESH, owner)
            return "revoked-refresh"
        return "unknown"

    def _refused(self, client: Client, kind: str, owner: object) -> Outcome:
        self._audit.record(
            "token.revoke_refused", actor=f"client:{client.client_id}", client_id=client.client_id,
            token_type=kind, owner=str(owner),
        )  # fmt: skip
        return "foreign"
