"""Admin API for the deny-list: client-credentials token with idp:admin for ISSUER/admin, RFC 7807 errors,
entries that name their author, and a revocation that reaches an idp.resource API within a second."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from idp.clock import FrozenClock
from idp.services import Services
from tests.adminkit import AdminApi, admin_client, mint
from tests.integration.live_server import LiveServer
from tests.integration.resource_support import api_client, bearer, eventually, protector_for, running_idp
from tests.integration.resource_support import mint as mint_api_token
from tests.integration.test_revocation import claims_of
from tests.oauthkit import basic

PROBLEM = "application/problem+json"


async def cc_admin_token(http: httpx.AsyncClient, container: Services) -> str:
    """A real client-credentials token from /token for a service client registered for ISSUER/admin."""
    client, secret = container.clients.create(
        name="ops", kind="service", scope="idp:admin", audience=f"{container.settings.issuer}/admin"
    )
    r = await http.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "idp:admin"},
        headers=basic(client.client_id, secret or ""),
    )
    assert r.status_code == 200, r.text
    return r.json()["access_token"]  # type: ignore[no-any-return]


async def test_round_trip_with_a_token_from_the_token_endpoint(client: httpx.AsyncClient, container: Services) -> None:
    api = AdminApi(client, bearer(await cc_admin_token(client, container)))
    r = await api.post("/admin/deny-list", json={"kind": "client", "value": "c-9", "reason": "leaked secret"})
    assert r.status_code == 201
    entry = r.json()
    assert r.headers["location"] == f"https://idp.test/admin/deny-list/{entry['id']}"
    assert entry["actor"].startswith("admin:") and entry["reason"] == "leaked secret"
    assert container.denylist.is_denied({"client_id": "c-9", "iat": 0})
    listed = (await api.get("/admin/deny-list")).json()
    assert listed["version"] == entry["id"] and [e["id"] for e in listed["entries"]] == [entry["id"]]
    event = container.audit.query(action="deny.added")[0]
    assert event.actor == entry["actor"] and event.detail["reason"] == "leaked secret"
    assert (await api.delete(f"/admin/deny-list/{entry['id']}", params={"reason": "rotated"})).status_code == 204
    assert not container.denylist.is_denied({"client_id": "c-9", "iat": 0})
    assert container.audit.query(action="deny.removed")[0].detail["reason"] == "rotated"
    assert (await api.delete("/admin/deny-list/abc")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "user", "value": "x", "reason": "r"},
        {"kind": "jti", "value": "", "reason": "r"},
        {"kind": "jti", "value": "x" * 201, "reason": "r"},
        {"kind": "jti", "value": "x"},
        {"kind": "jti", "value": "x", "reason": "r", "until": "tomorrow"},
        {"kind": "jti", "value": "x", "reason": "r", "until": True},
        {"kind": 5, "value": "x", "reason": "r"},
    ],
)
async def test_invalid_entries_are_422_problems(client: httpx.AsyncClient, container: Services, body: dict) -> None:
    ops = admin_client(container)
    r = await client.post("/admin/deny-list", json=body, headers=bearer(mint(container, ops)))
    assert r.status_code == 422 and r.headers["content-type"].startswith(PROBLEM)
    assert container.denylist.list() == []


async def test_who_may_call(client: httpx.AsyncClient, container: Services) -> None:
    ops = admin_client(container)
    body = {"kind": "jti", "value": "x", "reason": "r"}
    r = await client.post("/admin/deny-list", json=body)
    assert r.status_code == 401 and r.headers["content-type"].startswith(PROBLEM)
    assert r.headers["www-authenticate"].startswith("Bearer")
    wrong_aud = mint(container, ops, aud=f"{container.settings.issuer}/api")
    assert (await client.post("/admin/deny-list", json=body, headers=bearer(wrong_aud))).status_code == 401
    no_scope = mint(container, ops, scope="api:read")
    r = await client.get("/admin/deny-list", headers=bearer(no_scope))
    assert r.status_code == 403 and 'error="insufficient_scope"' in r.headers["www-authenticate"]
    id_token_typ = mint(container, ops, typ="JWT")
    assert (await client.get("/admin/deny-list", headers=bearer(id_token_typ))).status_code == 401
    # An admin token can be deny-listed like any other, and then it stops working.
    token = mint(container, ops)
    api = AdminApi(client, bearer(token))
    assert (await api.get("/admin/deny-list")).status_code == 200
    jti = claims_of(token)["jti"]
    assert (await api.post("/admin/deny-list", json={"kind": "jti", "value": jti, "reason": "r"})).status_code == 201
    assert (await client.get("/admin/deny-list", headers=bearer(token))).status_code == 401
    assert container.denylist.list()[0].value == jti


async def test_subject_entry_also_ends_the_users_refresh_tokens(client: httpx.AsyncClient, container: Services) -> None:
    from tests.oauthkit import make_user, refresh, tokens_for, web_client

    app, secret = web_client(container)
    user = make_user(container)
    tokens = await tokens_for(container, client, app, secret, user)
    api = AdminApi(client, bearer(mint(container, admin_client(container))))
    r = await api.post("/admin/deny-list", json={"kind": "subject", "value": user.id, "reason": "stolen phone"})
    assert r.status_code == 201
    assert (await refresh(client, app, secret, tokens["refresh_token"])).status_code == 400


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"denylist_heartbeat_seconds": 0.5, "denylist_sync_seconds": 0.2}


@pytest.fixture
async def idp(container: Services) -> AsyncIterator[LiveServer]:
    async with running_idp(container) as server:
        yield server


@pytest.mark.timing
@pytest.mark.timeout(60)
async def test_admin_revocation_reaches_the_api_within_a_second(
    idp: LiveServer, container: Services, clock: FrozenClock
) -> None:
    token = mint_api_token(container, clock, sub="u-stolen")
    async with api_client(protector_for(container, idp.url, clock)) as api, httpx.AsyncClient(base_url=idp.url) as http:
        assert (await api.get("/me", headers=bearer(token))).status_code == 200
        clock.advance(1)
        admin = bearer(mint(container, admin_client(container)))
        body = {"kind": "subject", "value": "u-stolen", "reason": "stolen phone"}
        r = await http.post("/admin/deny-list", json=body, headers=admin)
        assert r.status_code == 201

        async def refused() -> bool:
            return (await api.get("/me", headers=bearer(token))).status_code == 401

        await eventually(refused, 1.0, "admin deny-list entry refused at the API")
