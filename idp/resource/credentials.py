"""How a resource server authenticates to the IdP as its own client (the deny-list feed, introspection).

* :class:`ClientSecret`: ``client_secret_basic`` (RFC 6749 §2.3.1, id and secret
  form-encoded before the Basic encoding); works on ``GET``.
* :class:`PrivateKeyJwt`: ``private_key_jwt`` (RFC 7523 §2.2): a fresh assertion (new
  ``jti``, 60 s lifetime, ``aud`` = the issuer) in the form body of each request, so
  the requests that carry it are ``POST``.

Register the resource server at the IdP as a ``service`` client with the scope
``deny-list:read`` (and, for introspection, ``--audience`` = the API's identifier).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import quote

import httpx
import orjson
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey, RSAKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 60


class ClientCredentials(Protocol):
    client_id: str
    method: str
    """The HTTP method that can carry these credentials to a read-only endpoint: GET or POST."""

    def request_options(self) -> dict[str, Any]:
        """``httpx`` keyword arguments (``auth`` or ``data``) authenticating one request."""
        ...


class ClientSecret:
    method = "GET"

    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id = client_id
        # RFC 6749 §2.3.1: form-encode the id and secret before Basic encoding.
        self._auth = httpx.BasicAuth(quote(client_id, safe=""), quote(client_secret, safe=""))

    def request_options(self) -> dict[str, Any]:
        return {"auth": self._auth}


class PrivateKeyJwt:
    method = "POST"

    def __init__(
        self,
        client_id: str,
        private_key_pem: bytes | str,
        *,
        audience: str,
        alg: str = "ES256",
        key_id: str | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        """``audience``: the IdP's issuer identifier (what the IdP accepts as an assertion's ``aud``)."""
        cls: Any = {"ES256": ECKey, "RS256": RSAKey, "PS256": RSAKey, "EdDSA": OKPKey}[alg]
        self.client_id = client_id
        self._key = cls.import_key(private_key_pem)
        self._header = {"alg": alg, "typ": "JWT"} | ({"kid": key_id} if key_id else {})
        self._audience = audience
        self._now = now

    def assertion(self) -> str:
        now = int(self._now())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self._audience,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
            "jti": secrets.token_urlsafe(16),  # RFC 7523 §3 item 7: each assertion is used once
        }
        return jws.serialize_compact(self._header, orjson.dumps(claims), self._key, algorithms=[self._header["alg"]])

    def request_options(self) -> dict[str, Any]:
        return {"data": {"client_assertion_type": ASSERTION_TYPE, "client_assertion": self.assertion()}}


def as_credentials(value: ClientCredentials | tuple[str, str] | None) -> ClientCredentials | None:
    """``(client_id, client_secret)`` means :class:`ClientSecret`."""
    if value is None or not isinstance(value, tuple):
        return value
    client_id, client_secret = value
    return ClientSecret(client_id, client_secret)
