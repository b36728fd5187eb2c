"""A fake IdP for idp.resource unit tests: local keys, a JWKS served through httpx.MockTransport."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
import orjson
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey, RSAKey

from idp.keys.keyring import generate

ISSUER = "https://idp.test"
API = "https://api.test"


class FakeIdP:
    def __init__(self, algs: tuple[str, ...] = ("ES256", "RS256", "EdDSA"), *, max_age: int = 300) -> None:
        self.keys: dict[str, tuple[str, Any, dict[str, Any]]] = {}
        for alg in algs:
            self.add_key(alg)
        self.max_age = max_age
        self.jwks_fetches = 0
        self.jwks_status = 200
        self.introspect_answer: dict[str, Any] | None = {"active": True}
        self.introspect_calls = 0
        self.introspect_status = 200

    def add_key(self, alg: str) -> str:
        kid, pem, public = generate(alg)
        cls: Any = {"ES256": ECKey, "RS256": RSAKey, "EdDSA": OKPKey}[alg]
        self.keys[kid] = (alg, cls.import_key(pem), public)
        return kid

    def kid(self, alg: str) -> str:
        return next(k for k, (a, _, _) in self.keys.items() if a == alg)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public for _, _, public in self.keys.values()]}

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/jwks.json":
            self.jwks_fetches += 1
            if self.jwks_status != 200:
                return httpx.Response(self.jwks_status)
            body = orjson.dumps(self.jwks())
            etag = f'"{hash(body) & 0xFFFFFFFF:x}"'
            headers = {"cache-control": f"public, max-age={self.max_age}", "etag": etag}
            if request.headers.get("if-none-match") == etag:
                return httpx.Response(304, headers=headers)
            return httpx.Response(200, content=body, headers={**headers, "content-type": "application/json"})
        if request.url.path == "/introspect":
            self.introspect_calls += 1
            if self.introspect_status != 200:
                return httpx.Response(self.introspect_status)
            return httpx.Response(200, json=self.introspect_answer)
        return httpx.Response(404)

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler), base_url=ISSUER)

    def token(
        self,
        alg: str = "ES256",
        *,
        header: dict[str, Any] | None = None,
        kid: str | None = None,
        now: float | None = None,
        drop: tuple[str, ...] = (),
        **claims: Any,
    ) -> str:
        now = int(time.time() if now is None else now)
        kid = kid or self.kid(alg)
        body: dict[str, Any] = {
            "iss": ISSUER,
            "sub": "u1",
            "aud": API,
            "client_id": "c1",
            "iat": now,
            "exp": now + 600,
            "jti": secrets.token_urlsafe(9),
            "scope": "api:read",
        }
        body.update(claims)
        for name in drop:
            body.pop(name, None)
        hdr = {"alg": alg, "typ": "at+jwt", "kid": kid, **(header or {})}
        hdr = {k: v for k, v in hdr.items() if v is not None}
        key = self.keys[kid][1]
        return jws.serialize_compact(hdr, orjson.dumps(body), key, algorithms=[self.keys[kid][0]])
