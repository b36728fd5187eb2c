"""What resource servers import: JWKS cache, local at+jwt verification, deny-list follower, ASGI middleware.

    from idp.resource import BearerAuthMiddleware, ResourceProtector, requires_scope

    protector = ResourceProtector(
        issuer="https://idp.example", audience="https://api.example",
        client=(CLIENT_ID, CLIENT_SECRET),  # a client registered with the deny-list:read scope
    )
    app = Starlette(routes=..., middleware=[Middleware(BearerAuthMiddleware, protector=protector)])

    @requires_scope("orders:read")
    async def orders(request):
        principal = request.state.principal  # sub, client_id, scopes, claims

    @requires_auth(acr=("urn:idp:acr:mfa",), max_age=900)  # RFC 9470 step-up: a second factor, recently
    async def transfer(request): ...

Imports neither ``idp.web`` nor ``idp.oauth`` nor SQLAlchemy: a resource server needs
only this package, ``idp.tokens`` (JWT rules, the deny-list matcher) and ``httpx``.
See ``examples/resource_server.py``.
"""

from idp.resource.credentials import ClientCredentials, ClientSecret, PrivateKeyJwt
from idp.resource.follower import DenyListFollower
from idp.resource.jwks import JwksCache
from idp.resource.middleware import BearerAuthMiddleware, principal_of, requires_scope
from idp.resource.protector import AuthError, Introspector, ResourceProtector
from idp.resource.stepup import AuthRequirement, requires_auth
from idp.resource.verifier import AccessTokenVerifier, Principal, TokenInvalid

__all__ = [
    "AccessTokenVerifier",
    "AuthError",
    "AuthRequirement",
    "BearerAuthMiddleware",
    "ClientCredentials",
    "ClientSecret",
    "DenyListFollower",
    "Introspector",
    "JwksCache",
    "Principal",
    "PrivateKeyJwt",
    "ResourceProtector",
    "TokenInvalid",
    "principal_of",
    "requires_auth",
    "requires_scope",
]
