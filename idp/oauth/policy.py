"""Per-client decisions shared by the grants: scope, audience (RFC 8707), refresh tokens, algorithms.

Decisions recorded here (and in docs):

* Missing ``scope`` means the client's registered scopes (RFC 6749 §3.3 lets the
  server pick a documented default); a scope the client is not registered for is
  ``invalid_scope``.
* Audience: the client's registered audiences (space-separated) or the server
  default. ``resource`` (RFC 8707) selects one of them; anything else, or more
  than one, is ``invalid_target`` (one audience per token keeps tokens small and
  audience-restricted, RFC 9700 §2.3).
* Access tokens that carry ``openid`` also name the issuer as an audience: the
  issuer's own resource is userinfo, which accepts only tokens addressed to it.
* Refresh tokens go to clients registered for the ``refresh_token`` grant when
  the request is plain OAuth, or, for OpenID Connect requests, when
  ``offline_access`` was granted (OIDC Core §11) or the client is first-party.
  Grants without ``offline_access`` die with the login session; ``offline_access``
  grants survive logout unless IDP_LOGOUT_REVOKES_OFFLINE.
"""

from __future__ import annotations

import re

from idp.clients.model import Client
from idp.errors import InvalidScope, InvalidTarget

OPENID = "openid"
OFFLINE = "offline_access"
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,128}$")  # RFC 6749 §3.3 scope-token
MAX_SCOPES = 50


def parse_scope(value: str | None) -> list[str] | None:
    """The requested scope tokens (deduplicated, in order), or None when absent."""
    if value is None or not value.strip():
        return None
    tokens = list(dict.fromkeys(value.split(" ")))
    tokens = [t for t in tokens if t]
    if len(tokens) > MAX_SCOPES or not all(SCOPE_TOKEN.match(t) for t in tokens):
        raise InvalidScope("malformed scope")
    return tokens


def resolve_scope(client: Client, requested: str | None) -> list[str]:
    """The scopes to grant: the request's, which must all be registered for the client."""
    tokens = parse_scope(requested)
    if tokens is None:
        return list(client.scopes)
    allowed = set(client.scopes)
    if any(t not in allowed for t in tokens):
        raise InvalidScope("the client may not request this scope")  # RFC 6749 §3.3 / ASVS V10.4.11
    return tokens


def client_audiences(client: Client, default: str) -> list[str]:
    return client.audience.split() or [default]


def resolve_audience(client: Client, resources: list[str], default: str, *, fallback: str | None = None) -> str:
    """RFC 8707 §2: ``resource`` selects the audience; it must be one the client may address."""
    allowed = client_audiences(client, default)
    if not resources:
        return fallback if fallback else allowed[0]
    if len(resources) > 1:
        raise InvalidTarget("only one resource per token is supported")  # RFC 8707 §2: MAY refuse several
    if resources[0] not in allowed:
        raise InvalidTarget("the resource is not allowed for this client")  # RFC 8707 §2
    return resources[0]


def token_audiences(audience: str, scopes: list[str], issuer: str) -> list[str]:
    return [audience, issuer] if OPENID in scopes else [audience]


def issues_refresh(client: Client, scopes: list[str]) -> bool:
    if not client.allows_grant("refresh_token"):
        return False
    if OPENID not in scopes:
        return True
    return OFFLINE in scopes or client.first_party  # OIDC Core §11


def access_token_alg(client: Client, default: str) -> str:
    return client.access_token_alg or default


def id_token_alg(client: Client, default: str) -> str:
    return client.id_token_alg or default
