"""Who may call /admin (and /metrics): a client-credentials access token with scope ``idp:admin``.

Nothing else is accepted: no session cookie, no static secret, no token issued to
a person. The token must

* verify as our RFC 9068 access token (``typ`` at+jwt, pinned key, ``iss``, ``exp``)
  with ``aud`` = ``ISSUER/admin`` (the admin API is a resource of its own, RFC 8707);
* carry ``idp:admin`` in ``scope``;
* have been issued to a client for itself (``sub`` == ``client_id``, client credentials);
* belong to an enabled ``service`` client whose registration still includes ``idp:admin``
  (disabling the client or removing the scope takes effect at once, not at ``exp``);
* not be deny-listed (``jti``, client cut-off, compromised ``kid``).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from idp.clients.audiences import ADMIN_SCOPE, admin_audience
from idp.errors import InsufficientScope, InvalidToken
from idp.observability import context
from idp.services import Services
from idp.tokens import jwt

REALM = "idp-admin"


@dataclass(frozen=True)
class AdminPrincipal:
    client_id: str
    jti: str
    scopes: tuple[str, ...]

    @property
    def actor(self) -> str:
        """How admin actions name their author in audit events and deny-list entries."""
        return f"admin:{self.client_id}"


def bearer_token(request: Request) -> str | None:
    """RFC 6750 §2.1: the Authorization header, scheme case-insensitive. Never the query string (OAuth 2.1)."""
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def verify_admin_token(c: Services, token: str) -> AdminPrincipal:
    """Blocking (keyring refresh, client lookup, deny-list sync): call from a worker thread."""
    try:
        header, claims = jwt.verify(
            c.keyring,
            token,
            typ="at+jwt",  # RFC 9068 §4 / RFC 8725 §3.11: an ID token or logout token is not an access token
            issuer=c.settings.issuer,
            audience=admin_audience(c.settings.issuer),
            now=c.clock.now(),
            require=("iss", "exp", "iat", "sub", "client_id", "jti"),
        )
    except jwt.TokenInvalid as exc:
        raise InvalidToken("The access token is not valid for the admin API.", detail=str(exc)) from None
    scopes = tuple(str(claims.get("scope", "")).split())
    if ADMIN_SCOPE not in scopes:
        raise InsufficientScope(f"The admin API needs scope {ADMIN_SCOPE}.")
    client_id = claims["client_id"]
    if not isinstance(client_id, str) or claims["sub"] != client_id:
        raise InsufficientScope("The admin API accepts only client-credentials tokens.", detail="sub != client_id")
    client = c.clients.get_active(client_id)
    if client is None or client.kind != "service" or ADMIN_SCOPE not in client.scopes:
        raise InvalidToken("The access token is not valid for the admin API.", detail="client gone or not admin")
    if c.denylist.is_denied(claims, header.get("kid")):
        raise InvalidToken("The access token has been revoked.")
    return AdminPrincipal(client_id, str(claims["jti"]), scopes)


async def require_admin(c: Services, request: Request) -> AdminPrincipal:
    """The admin caller, or raise InvalidToken (401) / InsufficientScope (403)."""
    token = bearer_token(request)
    if token is None:
        raise InvalidToken("An idp:admin access token is required.")
    principal = await run_in_threadpool(verify_admin_token, c, token)
    context.annotate(client_id=principal.client_id)
    return principal
