"""BearerAuthMiddleware + requires_scope: RFC 6750 answers, the principal handed over, stale-list policies."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from idp.clock import FrozenClock
from idp.resource import BearerAuthMiddleware, ResourceProtector, principal_of, requires_scope
from tests.unit.resource.kit import API, ISSUER, FakeIdP

NOW = float(int(time.time()))


class FakeFollower:
    def __init__(self) -> None:
        self.stale = False
        self.denied: set[str] = set()

    def is_stale(self) -> bool:
        return self.stale

    def is_denied(self, claims: dict[str, Any], kid: str | None = None) -> bool:
        return claims.get("jti") in self.denied

    async def start(self, wait: float = 0) -> None: ...

    async def aclose(self) -> None: ...


async def whoami(request: Request) -> JSONResponse:
    p = principal_of(request)
    assert p is not None and request.state.principal is p
    return JSONResponse({"sub": p.sub, "client_id": p.client_id, "scopes": sorted(p.scopes)})


@requires_scope("api:write")
async def write(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


@pytest.fixture
def idp() -> FakeIdP:
    return FakeIdP(("ES256",))


def make(idp: FakeIdP, http: httpx.AsyncClient, **kw: Any) -> tuple[ResourceProtector, FakeFollower]:
    protector = ResourceProtector(issuer=ISSUER, audience=API, http=http, follow=False, clock=FrozenClock(NOW), **kw)
    follower = FakeFollower()
    protector.follower = follower  # type: ignore[assignment]
    return protector, follower


def api(protector: ResourceProtector) -> httpx.AsyncClient:
    app = Starlette(
        routes=[Route("/me", whoami), Route("/write", write, methods=["POST"]), Route("/health", health)],
        middleware=[Middleware(BearerAuthMiddleware, protector=protector, public_paths={"/health"})],
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=API)


def bearer(token: str, scheme: str = "Bearer") -> dict[str, str]:
    return {"authorization": f"{scheme} {token}"}


async def test_principal_reaches_the_handler(idp: FakeIdP) -> None:
    async with idp.http() as http, api(make(idp, http)[0]) as client:
        r = await client.get("/me", headers=bearer(idp.token(now=NOW, scope="api:read api:write")))
        assert r.status_code == 200
        assert r.json() == {"sub": "u1", "client_id": "c1", "scopes": ["api:read", "api:write"]}
        # RFC 9110 §11.1: the scheme is case-insensitive.
        assert (await client.get("/me", headers=bearer(idp.token(now=NOW), "bEaReR"))).status_code == 200


async def test_missing_token_is_a_bare_challenge(idp: FakeIdP) -> None:
    async with idp.http() as http, api(make(idp, http)[0]) as client:
        r = await client.get("/me")
        assert r.status_code == 401
        # RFC 6750 §3.1: no error code; RFC 9449 §7.2: both schemes are offered, DPoP with its algorithms.
        assert r.headers.get_list("www-authenticate") == [
            'Bearer realm="api"',
            'DPoP realm="api", algs="ES256 RS256 PS256 EdDSA Ed25519"',
        ]
        r = await client.get("/me", headers={"authorization": "Basic dXNlcjpwYXNz"})
        assert r.status_code == 401 and "error=" not in r.headers["www-authenticate"]
        assert (await client.get("/health")).status_code == 200  # public path


async def test_invalid_token_challenge(idp: FakeIdP) -> None:
    async with idp.http() as http, api(make(idp, http)[0]) as client:
        r = await client.get("/me", headers=bearer(idp.token(now=NOW, aud="https://other.test")))
        assert r.status_code == 401
        challenge = r.headers["www-authenticate"]
        assert challenge.startswith('Bearer realm="api", error="invalid_token", error_description="')
        assert r.json()["error"] == "invalid_token" and r.headers["cache-control"] == "no-store"


async def test_token_in_the_query_string_is_refused(idp: FakeIdP) -> None:
    async with idp.http() as http, api(make(idp, http)[0]) as client:
        r = await client.get("/me", params={"access_token": idp.token(now=NOW)})
        assert r.status_code == 400 and r.json()["error"] == "invalid_request"  # RFC 6750 §2.3 / OAuth 2.1


async def test_malformed_authorization_header(idp: FakeIdP) -> None:
    async with idp.http() as http, api(make(idp, http)[0]) as client:
        assert (await client.get("/me", headers={"authorization": "Bearer"})).status_code in (400, 401)
        r = await client.get("/me", headers={"authorization": "Bearer a b"})
        assert r.status_code == 400 and r.json()["error"] == "invalid_request"


async def test_requires_scope(idp: FakeIdP) -> None:
    async with idp.http() as http, api(make(idp, http)[0]) as client:
        r = await client.post("/write", headers=bearer(idp.token(now=NOW, scope="api:read")))
        assert r.status_code == 403
        assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
        assert 'scope="api:write"' in r.headers["www-authenticate"]
        ok = await client.post("/write", headers=bearer(idp.token(now=NOW, scope="api:read api:write")))
        assert ok.status_code == 200


async def test_requires_scope_without_middleware_refuses() -> None:
    app = Starlette(routes=[Route("/write", write, methods=["POST"])])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=API) as client:
        r = await client.post("/write")
        assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="api"'


async def test_deny_listed_token_is_refused(idp: FakeIdP) -> None:
    async with idp.http() as http:
        protector, follower = make(idp, http)
        async with api(protector) as client:
            token = idp.token(now=NOW, jti="stolen")
            assert (await client.get("/me", headers=bearer(token))).status_code == 200
            follower.denied.add("stolen")
            r = await client.get("/me", headers=bearer(token))
            assert r.status_code == 401 and "revoked" in r.headers["www-authenticate"]


@pytest.mark.parametrize("status", [401, 503])
async def test_stale_list_fails_closed(idp: FakeIdP, status: int) -> None:
    async with idp.http() as http:
        protector, follower = make(idp, http, stale_status=status)
        async with api(protector) as client:
            follower.stale = True
            r = await client.get("/me", headers=bearer(idp.token(now=NOW)))
            assert r.status_code == status
            if status == 503:
                assert r.json()["error"] == "temporarily_unavailable" and r.headers["retry-after"] == "1"
            else:
                assert 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_stale_list_falls_back_to_introspection(idp: FakeIdP) -> None:
    async with idp.http() as http:
        protector, follower = make(
            idp, http, on_stale="introspect", introspection_client=("rs", "s3cret:/+"), introspection_cache=30.0
        )
        async with api(protector) as client:
            token = idp.token(now=NOW)
            assert (await client.get("/me", headers=bearer(token))).status_code == 200
            assert idp.introspect_calls == 0  # fresh list: no call per request
            follower.stale = True
            assert (await client.get("/me", headers=bearer(token))).status_code == 200
            assert (await client.get("/me", headers=bearer(token))).status_code == 200
            assert idp.introspect_calls == 1  # cached briefly
            idp.introspect_answer = {"active": False}
            other = idp.token(now=NOW)
            r = await client.get("/me", headers=bearer(other))
            assert r.status_code == 401 and "not active" in r.headers["www-authenticate"]
            idp.introspect_status = 500
            r = await client.get("/me", headers=bearer(idp.token(now=NOW)))
            assert r.status_code == 503  # cannot know: closed
            follower.denied.add("gone")
            r = await client.get("/me", headers=bearer(idp.token(now=NOW, jti="gone")))
            assert r.status_code == 401  # the local copy still counts while stale


async def test_introspection_authenticates_with_form_encoded_basic(idp: FakeIdP) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"active": True})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        from idp.resource import Introspector

        assert await Introspector(f"{ISSUER}/introspect", ("rs id", "a:b/c"), http).introspect("t") is not None
    import base64

    raw = base64.b64decode(seen[0].headers["authorization"].split()[1]).decode()
    assert raw == "rs%20id:a%3Ab%2Fc"  # RFC 6749 §2.3.1
    assert b"token=t" in seen[0].content and b"token_type_hint=access_token" in seen[0].content


def test_protector_configuration_is_checked() -> None:
    with pytest.raises(ValueError):
        ResourceProtector(issuer=ISSUER, audience=API, follow=False, on_stale="introspect")  # no credentials
    with pytest.raises(ValueError, match="deny-list:read"):
        ResourceProtector(issuer=ISSUER, audience=API)  # the feed is read as a client: credentials needed
    with pytest.raises(ValueError):
        ResourceProtector(issuer=ISSUER, audience=API, client=("rs", "s"), stale_status=500)  # type: ignore[arg-type]
    both = ResourceProtector(issuer=ISSUER, audience=API, client=("rs", "s"), on_stale="introspect")
    assert both.follower is not None and both.introspector is not None  # one registration for both


def test_idp_resource_stands_alone() -> None:
    """A resource server installs idp.resource without the IdP's server side."""
    import subprocess
    import sys

    code = (
        "import sys, idp.resource; bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'redis', 'authlib', 'uvicorn') or m.startswith(('idp.web', 'idp.oauth', 'idp.store', "
        "'idp.services', 'idp.app'))); print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
