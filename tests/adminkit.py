"""Helpers for admin API and metrics tests: an idp:admin service client and tokens minted for it.

Tokens are signed directly with ``idp.tokens.jwt.sign`` (the keyring the app uses), shaped
like the RFC 9068 access tokens the client-credentials grant issues.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import httpx

from idp.clients.model import Client
from idp.services import Services
from idp.tokens import jwt
from idp.web.admin.auth import ADMIN_SCOPE, admin_audience


def admin_client(c: Services, name: str = "ops", scope: str = ADMIN_SCOPE, **kw: Any) -> Client:
    kw.setdefault("kind", "service")
    kw.setdefault("audience", admin_audience(c.settings.issuer))
    client, _secret = c.clients.create(name=name, scope=scope, **kw)
    return client


def mint(
    c: Services,
    client: Client,
    *,
    scope: str = ADMIN_SCOPE,
    aud: str | None = None,
    typ: str = "at+jwt",
    ttl: int = 600,
    **claims: Any,
) -> str:
    c.keyring.refresh(force=True)
    now = int(c.clock.now())
    body: dict[str, Any] = {
        "iss": c.settings.issuer,
        "aud": aud or admin_audience(c.settings.issuer),
        "sub": client.client_id,
        "client_id": client.client_id,
        "iat": now,
        "exp": now + ttl,
        "jti": secrets.token_urlsafe(16),
        "scope": scope,
    }
    body.update(claims)
    return jwt.sign(c.keyring, c.settings.access_token_alg, typ, body)


def admin_headers(c: Services, client: Client | None = None, **kw: Any) -> dict[str, str]:
    client = client or admin_client(c)
    return {"authorization": f"Bearer {mint(c, client, **kw)}"}


# -- OpenAPI conformance ---------------------------------------------------------------------------
def _spec() -> dict[str, Any]:
    from idp.web.admin.routes import load_spec

    return load_spec()


def _path_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")


def spec_operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """(template, operation) of the documented operation serving ``method path``; AssertionError if none."""
    for template, item in _spec()["paths"].items():
        if _path_regex(template).match(path):
            op = item.get(method.lower())
            assert op is not None, f"{method} {template} is not in the admin OpenAPI document"
            return template, op
    raise AssertionError(f"{path} is not in the admin OpenAPI document")


def check_response(response: httpx.Response) -> httpx.Response:
    """Assert the response is documented (status, media type) and its body validates against the schema."""
    import jsonschema

    method, path = response.request.method, response.request.url.path
    template, op = spec_operation(method, path)
    documented = op["responses"].get(str(response.status_code))
    assert documented is not None, f"{method} {template} answered {response.status_code}, not documented"
    content = documented.get("content")
    if not content:
        assert not response.content, f"{method} {template} {response.status_code} should have no body"
        return response
    ctype = response.headers["content-type"].split(";")[0]
    assert ctype in content, f"{method} {template} {response.status_code}: {ctype} not documented"
    schema = {"$ref": content[ctype]["schema"]["$ref"], "components": _spec()["components"]}
    jsonschema.Draft202012Validator(schema).validate(response.json())
    return response


class AdminApi:
    """An httpx client for /admin that checks every response against the OpenAPI document."""

    def __init__(self, client: httpx.AsyncClient, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = headers

    async def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**self.headers, **kw.pop("headers", {})}
        return check_response(await self.client.request(method, path, headers=headers, **kw))

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("POST", path, **kw)

    async def patch(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("PATCH", path, **kw)

    async def put(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("PUT", path, **kw)

    async def delete(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("DELETE", path, **kw)
