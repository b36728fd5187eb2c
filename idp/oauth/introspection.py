"""RFC 7662 token introspection: what the AS answers a confidential client about a token.

Every token that is not active *for this caller* gets exactly ``{"active": false}`` (§2.2):
unknown, malformed, expired, revoked, deny-listed (jti, subject/session/client cut-off,
compromised key), issued to a disabled or deleted client or user, or one the caller may not
see. Who may see what (§4: the AS decides whether the token may be used at the resource
server asking):

* an access token: the client it was issued to, and the resource server it is meant
  for, i.e. a client whose ``client_id`` or registered ``audience`` is in the token's
  ``aud`` (register a resource server as a ``service`` client with ``--audience`` equal
  to its API identifier);
* a refresh token: only the client it was issued to.

Active answers carry ``scope``, ``client_id``, ``sub``, ``aud``, ``iss``, ``exp``, ``iat``
and ``token_type`` (``Bearer`` or ``DPoP`` for access tokens, ``refresh_token`` for refresh tokens), and
``cnf`` for a DPoP-bound token or refresh family (RFC 9449 §6.2), so a resource server that introspects
can check the proof's key.
Everything here is reads of caches and stores, safe to repeat (:mod:`idp.nonblocking`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from idp.clients.model import Client
from idp.clock import Clock
from idp.keys.keyring import Keyring
from idp.oauth.presented import ACCESS, try_order, verified_access_token
from idp.tokens import jwt
from idp.tokens.refresh import GrantRecord, TokenRecord
from idp.users.directory import UserStore

if TYPE_CHECKING:
    from idp.services import Services

INACTIVE: dict[str, Any] = {"active": False}
ACCESS_CLAIMS = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "cnf", "act")  # act: RFC 8693 §4.1


@dataclass(frozen=True, slots=True)
class AccessTokenState:
    """One of our access tokens (signature, kid, alg, typ, iss, exp verified): ``claims`` when it is live,
    None when it is revoked or deny-listed or its client or user is no longer active (``why`` says which)."""

    header: dict[str, Any]
    claims: dict[str, Any] | None
    why: str = ""


class ActiveClients(Protocol):
    def get_active(self, client_id: str) -> Client | None:
        """The client, unless unknown or disabled."""
        ...


class RefreshLookup(Protocol):
    def lookup(self, token: str) -> tuple[TokenRecord, GrantRecord] | None:
        """The row and grant of a live refresh token (not rotated, revoked, idle- or absolutely expired)."""
        ...


class DenyCheck(Protocol):
    def is_denied(self, claims: Mapping[str, Any], kid: str | None = None) -> bool: ...


def may_see(caller: Client, claims: Mapping[str, Any]) -> bool:
    """RFC 7662 §4: the client the access token was issued to, or a resource server in its ``aud``."""
    if claims.get("client_id") == caller.client_id:
        return True
    aud = claims.get("aud")
    auds = {aud} if isinstance(aud, str) else set(aud) if isinstance(aud, list) else set()
    return caller.client_id in auds or bool(caller.audience and caller.audience in auds)


class Introspection:
    def __init__(
        self,
        *,
        keyring: Keyring,
        clock: Clock,
        issuer: str,
        clients: ActiveClients,
        users: UserStore,
        grants: RefreshLookup,
        denylist: DenyCheck,
    ) -> None:
        self._keyring = keyring
        self._clock = clock
        self._issuer = issuer
        self._clients = clients
        self._users = users
        self._grants = grants
        self._denylist = denylist

    def introspect(self, caller: Client, token: str, hint: str | None) -> dict[str, Any]:
        """The response body for ``caller`` (already authenticated as a confidential client)."""
        for kind in try_order(hint):
            answer = self._access_token(caller, token) if kind == ACCESS else self._refresh_token(caller, token)
            if answer is not None:
                return answer
        return INACTIVE

    def _parties_active(self, client_id: Any, user_id: Any) -> bool:
        """A disabled or deleted client or user ends its tokens at once (not at exp)."""
        if not isinstance(client_id, str) or self._clients.get_active(client_id) is None:
            return False
        if isinstance(user_id, str) and user_id != client_id:
            user = self._users.get(user_id)
            if user is None or user.disabled:
                return False
        return True

    def access_token_state(self, token: str) -> AccessTokenState | None:
        """The decision on an access token, whoever asks: None when it is not one of ours (or expired); the
        token exchange grant (RFC 8693) takes subject and actor tokens only where this finds them live."""
        if token.count(".") != 2:
            return None
        try:
            header, claims = verified_access_token(
                self._keyring, token, issuer=self._issuer, clock=self._clock, allow_expired=False
            )
        except jwt.TokenInvalid:
            return None
        if self._denylist.is_denied(claims, header.get("kid")):  # RFC 7662 §2.2: revoked => inactive
            return AccessTokenState(header, None, "deny-listed")
        if not self._parties_active(claims.get("client_id"), claims.get("sub")):
            return AccessTokenState(header, None, "client or user no longer active")
        return AccessTokenState(header, claims)

    def _access_token(self, caller: Client, token: str) -> dict[str, Any] | None:
        """None when this is not one of our access tokens; INACTIVE or the answer when it is."""
        state = self.access_token_state(token)
        if state is None:
            return None
        claims = state.claims
        if claims is None or not may_see(caller, claims):
            return INACTIVE
        out = {name: claims[name] for name in ACCESS_CLAIMS if name in claims}
        token_type = "DPoP" if "cnf" in out else "Bearer"  # RFC 9449 §6.2: the key the token is bound to
        return {"active": True, **out, "token_type": token_type}

    def _refresh_token(self, caller: Client, token: str) -> dict[str, Any] | None:
        found = self._grants.lookup(token)  # None unless live: not rotated, revoked, idle- or absolutely expired
        if found is None:
            return None
        row, grant = found
        if grant.client_id != caller.client_id or not self._parties_active(grant.client_id, grant.user_id):
            return INACTIVE
        # Subject and client cut-offs cover refresh tokens issued before them. Session entries do not: which
        # families outlive a login session (offline_access) is the grant store's decision, already in `lookup`.
        if self._denylist.is_denied({"sub": grant.user_id, "client_id": grant.client_id, "iat": row.created_at}):
            return INACTIVE
        out: dict[str, Any] = {
            "active": True,
            "scope": row.scope,
            "client_id": grant.client_id,
            "iss": self._issuer,
            "exp": int(min(row.idle_expires_at, grant.absolute_expires_at)),
            "iat": int(row.created_at),
            "token_type": "refresh_token",
        }
        if grant.user_id:
            out["sub"] = grant.user_id
        if grant.audience:
            out["aud"] = grant.audience
        if grant.jkt is not None:
            out["cnf"] = {"jkt": grant.jkt}  # RFC 9449 §6.2
        return out


def introspection_of(c: Services) -> Introspection:
    """The app's introspection decisions, over its services."""
    return Introspection(
        keyring=c.keyring, clock=c.clock, issuer=c.settings.issuer, clients=c.clients,
        users=c.directory.store, grants=c.grants, denylist=c.denylist,
    )  # fmt: skip
