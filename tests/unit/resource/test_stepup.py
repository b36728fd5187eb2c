"""RFC 9470 at the resource server: routes requiring an acr, amr methods or a recent sign-in answer 401
``insufficient_user_authentication`` with the ``acr_values`` / ``max_age`` to ask the IdP for."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from idp.resource import AuthRequirement, BearerAuthMiddleware, requires_auth
from tests.dpopkit import DPoPKey
from tests.unit.resource.kit import API, FakeIdP
from tests.unit.resource.test_middleware import NOW, bearer, make

MFA = "urn:idp:acr:mfa"


@requires_auth(acr=(MFA,), max_age=600, now=lambda: NOW)
async def transfer(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


@requires_auth(amr=("otp",))
async def codes_only(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def api(protector: Any) -> httpx.AsyncClient:
    app = Starlette(
        routes=[Route("/transfer", transfer, methods=["POST"]), Route("/otp", codes_only)],
        middleware=[Middleware(BearerAuthMiddleware, protector=protector)],
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=API)


@pytest.fixture
def idp() -> FakeIdP:
    return FakeIdP(("ES256",))


def challenge(r: httpx.Response) -> str:
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "insufficient_user_authentication"
    return r.headers["www-authenticate"]


async def test_a_strong_recent_sign_in_passes(idp: FakeIdP) -> None:
    async with idp.http() as http, api(make(idp, http)[0]) as client:
        token = idp.token(now=NOW, acr=MFA, amr=["pwd", "otp", "mfa"], auth_time=NOW - 60)
        assert (await client.post("/transfer", headers=bearer(token))).status_code == 200


async def test_a_weaker_acr_asks_for_the_acr(idp: FakeIdP) -> None:
    async with idp.http() as http, api(make(idp, http)[0]) as client:
        token = idp.token(now=NOW, acr="urn:idp:acr:sfa", amr=["pwd"], auth_time=NOW - 60)
        header = challenge(await client.post("/transfer", headers=bearer(token)))
        assert header.startswith('Bearer realm="api", error="insufficient_user_authentication"')
        assert f'acr_values="{MFA}"' in header and "max_age" not in header  # RFC 9470 §3


async def test_an_old_sign_in_asks_for_max_age(idp: FakeIdP) -> None:
    async with idp.http() as http, api(make(idp, http)[0]) as client:
        token = idp.token(now=NOW, acr=MFA, amr=["pwd", "otp", "mfa"], auth_time=NOW - 601)
        assert 'max_age="600"' in challenge(await client.post("/transfer", headers=bearer(token)))
        no_time = idp.token(now=NOW, acr=MFA, amr=["pwd", "otp", "mfa"])
        assert 'max_age="600"' in challenge(await client.post("/transfer", headers=bearer(no_time)))


async def test_amr_methods_are_all_required(idp: FakeIdP) -> None:
    async with idp.http() as http, api(make(idp, http)[0]) as client:
        assert (await client.get("/otp", headers=bearer(idp.token(now=NOW, amr=["pwd", "otp"])))).status_code == 200
        challenge(await client.get("/otp", headers=bearer(idp.token(now=NOW, amr=["pwd"]))))
        challenge(await client.get("/otp", headers=bearer(idp.token(now=NOW, amr="otp"))))  # not a list
        challenge(await client.get("/otp", headers=bearer(idp.token(now=NOW))))


async def test_a_bound_token_is_asked_in_the_dpop_scheme(idp: FakeIdP) -> None:
    """RFC 9449 §7.1: the step-up challenge for a DPoP-bound token uses the scheme it came with."""
    holder = DPoPKey("ES256")
    token = idp.token(now=NOW, acr="urn:idp:acr:sfa", amr=["pwd"], auth_time=NOW - 60, cnf={"jkt": holder.jkt})
    proof = holder.proof("POST", f"{API}/transfer", iat=NOW, access_token=token)
    async with idp.http() as http, api(make(idp, http)[0]) as client:
        r = await client.post("/transfer", headers={"authorization": f"DPoP {token}", "dpop": proof})
        header = challenge(r)
        assert header.startswith('DPoP realm="api", error="insufficient_user_authentication"'), header
        assert f'acr_values="{MFA}"' in header


async def test_without_a_token_the_usual_bare_challenge(idp: FakeIdP) -> None:
    async with idp.http() as http, api(make(idp, http)[0]) as client:
        r = await client.get("/otp")
        assert r.status_code == 401
        both = 'Bearer realm="api", DPoP realm="api", algs="ES256 RS256 PS256 EdDSA Ed25519"'
        assert r.headers["www-authenticate"] == both
        assert "error" not in r.headers["www-authenticate"]  # RFC 6750 §3.1: no error without credentials


def test_a_negative_max_age_is_refused() -> None:
    with pytest.raises(ValueError):
        AuthRequirement(max_age=-1)
