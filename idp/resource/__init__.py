"""What resource servers import: JWKS cache, local at+jwt verification, deny-list follower, ASGI middleware.

    from idp.resource import BearerAuthMiddleware, ResourceProtector, requires_auth, requires_scope

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

DPoP-bound tokens (RFC 9449) need no code in the handler: the middleware checks their
proof. An API with several workers shares a replay cache, ``dpop_replay=RedisReplayCache(
redis.Redis(...))``; ``dpop_nonces=HmacNonces(key)`` makes it demand its own nonces.

Imports neither ``idp.web`` nor ``idp.oauth`` nor SQLAlchemy: a resource server needs
only this package, ``idp.tokens`` (JWT rules, the deny-list matcher) and ``httpx``.
See ``examples/resource_server.py``.
"""

from idp.resource.credentials import ClientCredentials, ClientSecret, PrivateKeyJwt
from idp.resource.dpop import HmacNonces, MemoryReplayCache, RedisReplayCache
from idp.resource.errors import AuthError
from idp.resource.follower import DenyListFollower
from idp.resource.jwks import JwksCache
from idp.resource.middleware import BearerAuthMiddleware, principal_of, requires_scope
from idp.resource.protector import Introspector, ResourceProtector
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
    "HmacNonces",
    "Introspector",
    "JwksCache",
    "MemoryReplayCache",
    "Principal",
    "PrivateKeyJwt",
    "RedisReplayCache",
    "ResourceProtector",
    "TokenInvalid",
    "principal_of",
    "requires_auth",
    "requires_scope",
]
