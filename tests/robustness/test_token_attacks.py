"""Forged and misused tokens against every verifier: idp.resource, the admin API, /userinfo, /introspect.

Each catalogue entry (forge.py) must be refused: 401 with
``WWW-Authenticate: Bearer error="invalid_token"`` (RFC 6750 §3.1), or ``{"active": false}``
and nothing else at introspection (RFC 7662 §2.2). A control token proves the target
accepts a good token, so a refusal is about the attack and not the setup.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from idp.resource import BearerAuthMiddleware, ResourceProtector
from idp.services import Services
from idp.web.admin.auth import ADMIN_SCOPE, admin_audience
from tests.adminkit import admin_client
from tests.oauthkit import make_user as oauth_user
from tests.oauthkit import tokens_for, web_client
from tests.pagekit import make_user
from tests.robustness.forge import Forge
from tests.robustness.kit import ISSUER, Site, assert_invalid_token, describe, need


def refused_all(results: dict[str, httpx.Response], check: object) -> None:
    failures = []
    for name, r in results.items():
        try:
            check(r)  # type: ignore[operator]
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
    assert not failures, "accepted or mis-refused:\n" + "\n".join(failures)


async def resource_server(site: Site, c: Services) -> tuple[Starlette, ResourceProtector]:
    """A resource server built only from idp.resource, fetching our JWKS over the in-process transport."""
    idp_http = httpx.AsyncClient(transport=site.http._transport, base_url=ISSUER)  # type: ignore[attr-defined]
    protector = ResourceProtector(
        issuer=c.settings.issuer, audience=c.settings.audience, http=idp_http, follow=False, clock=c.clock
    )

    async def orders(request: Request) -> JSONResponse:
        return JSONResponse({"sub": request.state.principal.sub})

    api = Starlette(
        routes=[Route("/orders", orders)], middleware=[Middleware(BearerAuthMiddleware, protector=protector)]
    )
    return api, protector


@pytest.fixture
async def api(site: Site, container: Services) -> AsyncIterator[httpx.AsyncClient]:
    app, protector = await resource_server(site, container)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.test") as http:
        yield http
    await protector.aclose()
    await protector.http.aclose()


async def bearer(http: httpx.AsyncClient, path: str, token: str) -> httpx.Response:
    return await http.get(path, headers={"authorization": f"Bearer {token}"})


async def test_resource_server_refuses_every_forged_token(container: Services, api: httpx.AsyncClient) -> None:
    forge = Forge(container, audience=container.settings.audience)
    ok = await bearer(api, "/orders", forge.valid())
    assert ok.status_code == 200, describe(ok)
    results = {name: await bearer(api, "/orders", token) for name, token in forge.tokens().items()}
    refused_all(results, assert_invalid_token)


async def test_resource_server_refuses_every_forged_rs256_token(container: Services, api: httpx.AsyncClient) -> None:
    forge = Forge(container, audience=container.settings.audience, alg="RS256")
    assert (await bearer(api, "/orders", forge.valid())).status_code == 200
    results = {name: await bearer(api, "/orders", token) for name, token in forge.tokens().items()}
    refused_all(results, assert_invalid_token)


async def test_admin_api_refuses_every_forged_token(container: Services, site: Site) -> None:
    ops = admin_client(container)
    admin = {"sub": ops.client_id, "client_id": ops.client_id, "scope": ADMIN_SCOPE}
    forge = Forge(container, audience=admin_audience(container.settings.issuer), **admin)
    ok = await bearer(site.http, "/admin/clients", forge.valid())
    assert ok.status_code == 200, describe(ok)
    results = {}
    for name, token in forge.tokens().items():
        results[name] = await bearer(site.http, "/admin/clients", token)
    refused_all(results, assert_invalid_token)


async def resource_verdict(site: Site, c: Services, token: str) -> httpx.Response:
    """A resource server that starts now (fresh JWKS) judges ``token``."""
    app, protector = await resource_server(site, c)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.test") as http:
            return await bearer(http, "/orders", token)
    finally:
        await protector.aclose()
        await protector.http.aclose()


async def test_token_of_a_compromised_key_is_refused_everywhere(container: Services, site: Site) -> None:
    c = container
    ops = admin_client(c)
    admin = Forge(c, audience=admin_audience(c.settings.issuer), sub=ops.client_id, client_id=ops.client_id,
                  scope=ADMIN_SCOPE)  # fmt: skip
    api_token = Forge(c, audience=c.settings.audience).valid()
    admin_token = admin.valid()
    assert (await bearer(site.http, "/admin/clients", admin_token)).status_code == 200
    assert (await resource_verdict(site, c, api_token)).status_code == 200

    c.keyring.revoke(admin.kid)  # idp keys revoke: compromised, unpublished at once

    assert admin.kid not in (await site.http.get("/jwks.json")).text
    assert_invalid_token(await bearer(site.http, "/admin/clients", admin_token))
    assert_invalid_token(await resource_verdict(site, c, api_token))


async def test_token_of_a_retired_and_removed_key_is_refused(container: Services, site: Site) -> None:
    c = container
    ops = admin_client(c)
    year = 365 * 86_400
    admin = Forge(c, audience=admin_audience(c.settings.issuer), sub=ops.client_id, client_id=ops.client_id,
                  scope=ADMIN_SCOPE, exp=int(c.clock.now()) + year)  # fmt: skip
    admin_token = admin.valid()
    api_token = Forge(c, audience=c.settings.audience, exp=int(c.clock.now()) + year).valid()

    c.keyring.rotate(admin.alg)
    c.clock.advance(c.keyring.policy.publish_lead + 1)
    c.keyring.tick()  # the new key signs; the old one is retired but still verifies
    row = next(r for r in c.keyring.rows() if r.kid == admin.kid)
    assert row.state == "retired"
    assert (await bearer(site.http, "/admin/clients", admin_token)).status_code == 200
    assert (await resource_verdict(site, c, api_token)).status_code == 200

    c.clock.advance(c.keyring.policy.retire_keep + 1)
    c.keyring.tick()  # retired long enough: removed
    row = next(r for r in c.keyring.rows() if r.kid == admin.kid)
    assert row.state == "removed"
    assert admin.kid not in (await site.http.get("/jwks.json")).text
    assert_invalid_token(await bearer(site.http, "/admin/clients", admin_token))
    assert_invalid_token(await resource_verdict(site, c, api_token))


async def test_userinfo_refuses_every_forged_token(container: Services, site: Site) -> None:
    need(site, "/userinfo")
    user = make_user(container)
    app, _ = container.clients.create(name="web app", kind="web", redirect_uris=["https://app.example/cb"])
    forge = Forge(
        container,
        audience=container.settings.issuer,
        sub=user.id,
        client_id=app.client_id,
        scope="openid profile email",
    )  # userinfo also refuses a token whose client is gone
    ok = await bearer(site.http, "/userinfo", forge.valid())
    assert ok.status_code == 200 and ok.json()["sub"] == user.id, describe(ok)
    results = {name: await bearer(site.http, "/userinfo", token) for name, token in forge.tokens().items()}
    # RFC 6750 §2.2: the same tokens in a form body are judged the same way.
    for name, token in list(forge.tokens().items())[:8]:
        results[f"{name} (form body)"] = await site.http.post("/userinfo", data={"access_token": token})
    refused_all(results, assert_invalid_token)


def assert_inactive(r: httpx.Response) -> None:
    """RFC 7662 §2.2: an inactive token gets {"active": false} and nothing else."""
    assert r.status_code == 200, describe(r)
    assert r.json() == {"active": False}, describe(r)


async def test_introspection_reports_every_forged_token_inactive(container: Services, site: Site) -> None:
    need(site, "/introspect", "POST")
    c = container
    # The resource server asking (its registered audience is the token's aud) and the client the tokens name.
    rs, secret = c.clients.create(name="api gateway", kind="service", scope="api", audience=c.settings.audience)
    app, _ = c.clients.create(name="integrator", kind="service", scope="api")
    assert secret is not None
    forge = Forge(c, audience=c.settings.audience, sub=app.client_id, client_id=app.client_id)
    auth = (rs.client_id, secret)
    ok = await site.http.post("/introspect", data={"token": forge.valid()}, auth=auth)
    assert ok.status_code == 200 and ok.json().get("active") is True, describe(ok)
    results = {}
    for name, token in forge.tokens().items():
        results[name] = await site.http.post("/introspect", data={"token": token}, auth=auth)
        hinted = {"token": token, "token_type_hint": "access_token"}
        results[f"{name} (hinted)"] = await site.http.post("/introspect", data=hinted, auth=auth)
    refused_all(results, assert_inactive)


async def test_token_exchange_refuses_every_forged_subject_and_actor_token(container: Services, site: Site) -> None:
    """RFC 8693 §2.2.2: the exchange takes only what introspection finds active, and says invalid_request."""
    need(site, "/token", "POST")
    c = container
    grant = "urn:ietf:params:oauth:grant-type:token-exchange"
    at_type = "urn:ietf:params:oauth:token-type:access_token"
    app, secret = c.clients.create(
        name="exchanger", kind="service", scope="api", audience=c.settings.audience, grant_types=[grant],
        token_exchange_audiences=["https://next.example"],
    )  # fmt: skip
    assert secret is not None
    forge = Forge(c, audience=c.settings.audience, sub=oauth_user(c).id, client_id=app.client_id)  # a user's token
    auth = (app.client_id, secret)
    base = {"grant_type": grant, "subject_token_type": at_type, "audience": "https://next.example"}
    ok = await site.http.post("/token", data={**base, "subject_token": forge.valid()}, auth=auth)
    assert ok.status_code == 200 and ok.json().get("access_token"), describe(ok)
    results = {}
    # wrong_aud is a genuine token issued to this very client: exchangeable, which is the rule (RFC 8693 §2.1).
    forged = {name: token for name, token in forge.tokens().items() if name != "wrong_aud"}
    for name, token in forged.items():
        results[name] = await site.http.post("/token", data={**base, "subject_token": token}, auth=auth)
        as_actor = {**base, "subject_token": forge.valid(), "actor_token": token, "actor_token_type": at_type}
        results[f"{name} (actor)"] = await site.http.post("/token", data=as_actor, auth=auth)

    def refused(r: httpx.Response) -> None:
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", describe(r)

    refused_all(results, refused)


async def test_real_id_and_refresh_tokens_are_not_access_tokens(container: Services, site: Site) -> None:
    """Tokens we really issued, presented where only an access token may go (RFC 8725 §3.11, RFC 9068 §4)."""
    need(site, "/token", "POST")
    c, http = container, site.http
    web, secret = web_client(c)
    tokens = await tokens_for(c, http, web, secret, oauth_user(c), scope="openid profile offline_access")
    assert (await bearer(http, "/userinfo", tokens["access_token"])).status_code == 200
    app, protector = await resource_server(site, c)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.test") as api:
            for name in ("id_token", "refresh_token"):
                assert_invalid_token(await bearer(http, "/userinfo", tokens[name]))
                assert_invalid_token(await bearer(api, "/orders", tokens[name]))
                assert_invalid_token(await bearer(http, "/admin/clients", tokens[name]))
    finally:
        await protector.aclose()
        await protector.http.aclose()
    if site.has("/introspect", "POST"):
        # The ID token is no token of the introspection family: inactive, even for the client it names.
        r = await http.post("/introspect", data={"token": tokens["id_token"]}, auth=(web.client_id, secret))
        assert r.status_code == 200 and r.json() == {"active": False}, describe(r)
