"""The admin API: clients, users, keys, audit. Every response is checked against /admin/openapi.json."""

from __future__ import annotations

import pytest

from idp.app import create_app
from tests.adminkit import AdminApi, admin_client, mint, spec_operation
from tests.pagekit import PASSWORD, make_user, session_value, sign_in


@pytest.fixture
def ops(container):
    return admin_client(container)


@pytest.fixture
def api(client, container, ops) -> AdminApi:
    return AdminApi(client, {"authorization": f"Bearer {mint(container, ops)}"})


def actions(container, **kw) -> list[str]:
    return [e.action for e in container.audit.query(**kw)]


# -- the document ----------------------------------------------------------------------------------
async def test_every_admin_route_is_documented_and_every_documented_operation_exists(client, container) -> None:
    from idp.web.admin.routes import load_spec

    served = {
        (route.path, method.lower())
        for route in create_app(services=container).routes
        if getattr(route, "path", "").startswith("/admin")
        for method in (route.methods or set()) - {"HEAD"}
    }
    documented = {
        (path, method)
        for path, item in load_spec()["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert served == documented
    r = await client.get("/admin/openapi.json")
    assert r.status_code == 200 and r.json()["openapi"].startswith("3.1")
    assert r.json()["servers"] == [{"url": "https://idp.test"}]
    for path, method in documented:
        if path != "/admin/openapi.json":
            op = spec_operation(method, path.replace("{", "x").replace("}", ""))[1]
            assert {"401", "403"} <= set(op["responses"]), (method, path)


# -- clients ---------------------------------------------------------------------------------------
async def test_client_life_cycle_with_the_secret_shown_once(api, container, ops) -> None:
    r = await api.post("/admin/clients", json={
        "name": "Shop", "type": "web", "redirect_uris": ["https://shop.example/cb"], "scope": "openid profile",
    })  # fmt: skip
    assert r.status_code == 201
    created = r.json()
    cid, secret = created["client_id"], created["client_secret"]
    assert r.headers["location"] == f"https://idp.test/admin/clients/{cid}"
    assert container.clients.check_secret(container.clients.get(cid), secret)

    shown = (await api.get(f"/admin/clients/{cid}")).json()
    assert "client_secret" not in shown and "secret_digest" not in shown and secret not in str(shown)
    assert cid in [c["client_id"] for c in (await api.get("/admin/clients")).json()["clients"]]

    r = await api.patch(f"/admin/clients/{cid}", json={"redirect_uris": ["https://shop.example/cb2"], "name": "Shop 2"})
    assert r.status_code == 200 and r.json()["redirect_uris"] == ["https://shop.example/cb2"]
    assert container.clients.get(cid).name == "Shop 2"

    r = await api.post(f"/admin/clients/{cid}/secret")
    new = r.json()["client_secret"]
    container.clients.invalidate(cid)
    assert new != secret
    assert container.clients.check_secret(container.clients.get(cid), new)
    assert not container.clients.check_secret(container.clients.get(cid), secret)  # the old one is dead at once

    assert (await api.delete(f"/admin/clients/{cid}")).status_code == 204
    assert (await api.get(f"/admin/clients/{cid}")).status_code == 404
    assert [a for a in actions(container) if a.startswith("client.")] == [
        "client.deleted",
        "client.secret_rotated",
        "client.updated",
        "client.created",
    ]
    assert {e.actor for e in container.audit.query(action="client.created")} == {f"admin:{ops.client_id}"}


async def test_client_validation_errors_are_problem_documents(api) -> None:
    cases = [
        ({"name": "x", "type": "web", "redirect_uris": ["http://shop.example/cb"]}, 422),  # RFC 9700 §2.6: https
        ({"name": "x", "type": "service", "grant_types": ["password"]}, 422),  # RFC 9700 §2.4: no ROPC
        (
            {
                "name": "x",
                "type": "native",
                "grant_types": ["client_credentials"],
                "redirect_uris": ["http://127.0.0.1/cb"],
            },
            422,
        ),
        ({"name": "x", "type": "robot"}, 422),
        ({"name": "x"}, 422),
        ({"name": "x", "type": "service", "secret_digest": "AAAA"}, 422),
        ({"name": 3, "type": "service"}, 422),
    ]
    for body, status in cases:
        r = await api.post("/admin/clients", json=body)
        assert r.status_code == status, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    assert (
        await api.post("/admin/clients", content=b"{nope", headers={"content-type": "application/json"})
    ).status_code == 400
    assert (
        await api.post("/admin/clients", content=b"[1]", headers={"content-type": "application/json"})
    ).status_code == 400
    r = await api.post(
        "/admin/clients", content=b"name=x", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 415


async def test_cors_origins_and_id_token_claims_round_trip(api, client, container) -> None:
    r = await api.post("/admin/clients", json={
        "name": "Console", "type": "web", "redirect_uris": ["https://console.example/cb"],
        "allowed_cors_origins": ["https://Console.Example"], "claims_in_id_token": True,
    })  # fmt: skip
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["allowed_cors_origins"] == ["https://console.example"] and created["claims_in_id_token"] is True
    cid = created["client_id"]
    preflight = {"origin": "https://console.example", "access-control-request-method": "POST"}
    assert (await client.options("/introspect", headers=preflight)).status_code == 204
    r = await api.patch(f"/admin/clients/{cid}", json={"allowed_cors_origins": [], "claims_in_id_token": False})
    assert r.status_code == 200 and r.json()["allowed_cors_origins"] == [] and not r.json()["claims_in_id_token"]
    assert (await client.options("/introspect", headers=preflight)).status_code == 403
    for bad in (["https://console.example/app"], ["http://console.example"], ["console.example"], "https://x.example"):
        r = await api.patch(f"/admin/clients/{cid}", json={"allowed_cors_origins": bad})
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", bad


async def test_client_registration_refuses_unsafe_redirects_and_reserved_audiences(api, container) -> None:
    issuer = container.settings.issuer
    for body, names in (
        ({"name": "x", "type": "web", "redirect_uris": ["https://:p@shop.example/cb"]}, "userinfo"),
        ({"name": "x", "type": "native", "redirect_uris": ["http://127.0.0.1:0x50/cb"]}, "port"),
        ({"name": "x", "type": "web", "redirect_uris": ["https://shop.example/c\tb"]}, "printable"),
        ({"name": "x", "type": "service", "audience": issuer}, "reserved"),
        ({"name": "x", "type": "service", "audience": f"{issuer}/admin"}, "reserved"),
    ):
        r = await api.post("/admin/clients", json=body)
        assert r.status_code == 422 and names in r.json()["detail"], (body, r.text)
    r = await api.post("/admin/clients", json={"name": "RS", "type": "service", "audience": "https://api.example"})
    assert r.status_code == 201, r.text
    cid = r.json()["client_id"]
    r = await api.patch(f"/admin/clients/{cid}", json={"audience": f"{issuer}/"})
    assert r.status_code == 422 and "reserved" in r.json()["detail"]
    assert container.clients.get(cid).audience == "https://api.example"


async def test_public_clients_have_no_secret_to_rotate(api, container) -> None:
    native, _ = container.clients.create(name="App", kind="native", redirect_uris=["http://127.0.0.1/cb"])
    r = await api.post(f"/admin/clients/{native.client_id}/secret")
    assert r.status_code == 409 and r.json()["code"] == "no_secret"
    assert (await api.post("/admin/clients/nope/secret")).status_code == 404


async def test_disabling_or_deleting_a_client_deny_lists_its_live_tokens(api, container) -> None:
    svc, _ = container.clients.create(name="Billing", kind="service", scope="api:read")
    token_claims = {"sub": svc.client_id, "client_id": svc.client_id, "iat": container.clock.now() - 1}
    r = await api.patch(f"/admin/clients/{svc.client_id}", json={"disabled": True})
    assert r.status_code == 200 and r.json()["disabled"] is True
    assert container.denylist.is_denied(token_claims)


# -- users -----------------------------------------------------------------------------------------
async def test_create_user_with_a_generated_password_shown_once(api, container) -> None:
    r = await api.post("/admin/users", json={"username": "bob", "email": "bob@example.com"})
    assert r.status_code == 201
    body = r.json()
    assert container.directory.authenticate("bob", body["password"]).id == body["id"]
    assert "password" not in (await api.get(f"/admin/users/{body['id']}")).json()
    assert "password_hash" not in str((await api.get("/admin/users")).json())
    assert (await api.post("/admin/users", json={"username": "bob"})).status_code == 409
    assert (await api.post("/admin/users", json={"username": "carol", "password": "short"})).status_code == 422
    assert (await api.get("/admin/users/nobody")).status_code == 404


async def test_disabling_a_user_ends_their_sessions_and_tokens(api, client, container) -> None:
    user = make_user(container)
    assert (await sign_in(client)).status_code == 303
    cookie = session_value(client)
    sessions = (await api.get(f"/admin/users/{user.id}/sessions")).json()["sessions"]
    assert len(sessions) == 1 and cookie not in str(sessions)
    container.clock.advance(1)
    r = await api.post(f"/admin/users/{user.id}/disable")
    assert r.status_code == 200 and r.json()["disabled"] is True
    assert container.login_sessions.from_cookie(cookie) is None
    assert container.directory.authenticate("alice", PASSWORD) is None
    assert container.denylist.is_denied({"sub": user.id, "iat": container.clock.now() - 1})
    assert (await api.post(f"/admin/users/{user.id}/enable")).json()["disabled"] is False
    assert container.directory.authenticate("alice", PASSWORD) is not None


async def test_common_passwords_and_the_username_are_refused(api, container) -> None:
    """NIST SP 800-63B §5.1.1.2: creating a user and resetting a password alike; a clear 422."""
    for body, message in (
        ({"username": "carol", "password": "password"}, "too common"),
        ({"username": "carol", "password": "12345678"}, "too common"),
        ({"username": "carol", "password": "Carol1984"}, "username or email"),
        ({"username": "dan", "password": "dan.the.man", "email": "dan.the.man@example.com"}, "username or email"),
    ):
        r = await api.post("/admin/users", json=body)
        assert r.status_code == 422 and message in r.text, r.text
    assert container.directory.store.list() == []
    user = make_user(container)
    r = await api.post(f"/admin/users/{user.id}/password", json={"password": "iloveyou"})
    assert r.status_code == 422 and "too common" in r.text
    assert container.directory.authenticate("alice", PASSWORD) is not None


async def test_password_reset_signs_out_everywhere_by_default(api, client, container) -> None:
    user = make_user(container)
    await sign_in(client)
    cookie = session_value(client)
    r = await api.post(f"/admin/users/{user.id}/password", json={"password": "a brand new passphrase"})
    assert r.status_code == 200 and r.json()["sessions_ended"] == 1 and "password" not in r.json()
    assert container.login_sessions.from_cookie(cookie) is None
    assert container.directory.authenticate("alice", PASSWORD) is None
    assert container.directory.authenticate("alice", "a brand new passphrase") is not None
    r = await api.post(f"/admin/users/{user.id}/password", json={"sign_out": False})
    assert r.json()["sessions_ended"] == 0 and len(r.json()["password"]) >= 20
    assert "user.password_reset" in actions(container, subject=user.id)


async def test_sign_out_everywhere_and_ending_one_session(api, client, container, app) -> None:
    import httpx

    user = make_user(container)
    await sign_in(client)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://idp.test") as other:
        await sign_in(other)
        cookies = [session_value(client), session_value(other)]
    sessions = (await api.get(f"/admin/users/{user.id}/sessions")).json()["sessions"]
    assert len(sessions) == 2
    assert (await api.delete(f"/admin/users/{user.id}/sessions/{sessions[0]['sid']}")).status_code == 204
    assert (await api.delete(f"/admin/users/{user.id}/sessions/{sessions[0]['sid']}")).status_code == 404
    assert len((await api.get(f"/admin/users/{user.id}/sessions")).json()["sessions"]) == 1
    container.clock.advance(1)
    r = await api.delete(f"/admin/users/{user.id}/sessions")
    assert r.json() == {"user_id": user.id, "sessions_ended": 1}
    assert all(container.login_sessions.from_cookie(c) is None for c in cookies)
    assert container.denylist.is_denied({"sub": user.id, "iat": container.clock.now() - 1})
    assert "user.signed_out_everywhere" in actions(container, subject=user.id)


# -- keys ------------------------------------------------------------------------------------------
async def test_keys_list_rotate_retire_and_revoke(api, client, container, ops) -> None:
    keys = (await api.get("/admin/keys")).json()["keys"]
    assert {k["state"] for k in keys} == {"active"}
    assert not any("private" in name for k in keys for name in k)

    r = await api.post("/admin/keys/rotate", json={"alg": "RS256"})
    (nxt,) = r.json()["keys"]
    assert nxt["state"] == "next" and nxt["alg"] == "RS256"
    container.clock.advance(3)
    jwks = (await client.get("/jwks.json")).json()
    assert nxt["kid"] in {k["kid"] for k in jwks["keys"]}  # published before it signs
    assert (await api.post("/admin/keys/rotate", json={"alg": "HS256"})).status_code == 422

    rs_active = next(k for k in keys if k["alg"] == "RS256")
    r = await api.post(f"/admin/keys/{rs_active['kid']}/retire")
    assert r.json()["state"] == "retired"

    es = next(k for k in keys if k["alg"] == container.settings.access_token_alg)
    r = await api.post(f"/admin/keys/{es['kid']}/revoke")
    assert r.status_code == 200 and r.json()["state"] == "compromised"
    container.clock.advance(3)
    jwks = (await client.get("/jwks.json")).json()
    assert es["kid"] not in {k["kid"] for k in jwks["keys"]}
    assert container.denylist.is_denied({}, es["kid"])
    api.headers = {"authorization": f"Bearer {mint(container, ops)}"}  # ours was signed by the revoked key
    assert (await api.post(f"/admin/keys/{es['kid']}/revoke")).status_code == 404
    assert {"key.rotated", "key.retired", "key.compromised"} <= set(actions(container))


# -- audit -----------------------------------------------------------------------------------------
async def test_audit_query_filters_and_pages(api, container, clock, ops) -> None:
    for i in range(5):
        container.audit.record("user.created", actor="cli", subject=f"u{i}")
        clock.advance(3600)
    container.audit.record("key.rotated", actor="cli", kid="k1")
    api.headers = {"authorization": f"Bearer {mint(container, ops)}"}  # time moved past the first token's exp
    r = await api.get("/admin/audit", params={"action": "user.created", "limit": "2"})
    page = r.json()
    assert [e["subject"] for e in page["events"]] == ["u4", "u3"] and page["next_before"]
    page2 = (await api.get("/admin/audit", params={"action": "user.created", "limit": "2",
                                                   "before": str(page["next_before"])})).json()  # fmt: skip
    assert [e["subject"] for e in page2["events"]] == ["u2", "u1"]
    assert [e["subject"] for e in (await api.get("/admin/audit", params={"subject": "u0"})).json()["events"]] == ["u0"]
    recent = (await api.get("/admin/audit", params={"since": "150m"})).json()["events"]
    assert [e["action"] for e in recent] == ["key.rotated", "user.created", "user.created"]
    assert recent[0]["detail"] == {"kid": "k1"} and recent[0]["time"].endswith("Z")
    for bad in ({"since": "yesterday"}, {"limit": "0"}, {"limit": "x"}, {"before": "-1"}):
        r = await api.get("/admin/audit", params=bad)
        assert r.status_code == 400, bad


# -- deny-list (its routes, checked against the same document) -------------------------------
async def test_deny_list_entries_round_trip(api, container) -> None:
    r = await api.post("/admin/deny-list", json={"kind": "subject", "value": "u-9", "reason": "stolen phone"})
    assert r.status_code == 201
    entry = r.json()
    listed = (await api.get("/admin/deny-list")).json()
    assert entry["id"] in [e["id"] for e in listed["entries"]]
    assert (await api.post("/admin/deny-list", json={"kind": "user", "value": "x", "reason": "r"})).status_code == 422
    assert (await api.delete(f"/admin/deny-list/{entry['id']}", params={"reason": "mistake"})).status_code == 204
    assert (await api.delete(f"/admin/deny-list/{entry['id']}")).status_code == 404


async def test_dpop_bound_access_tokens_round_trip(api, container) -> None:
    """RFC 9449 §5.2: the client setting is created, read and changed through the API (and the schema)."""
    r = await api.post("/admin/clients", json={
        "name": "App", "type": "native", "redirect_uris": ["http://127.0.0.1/cb"], "dpop_bound_access_tokens": True,
    })  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["dpop_bound_access_tokens"] is True
    cid = r.json()["client_id"]
    assert container.clients.get(cid).dpop_bound_access_tokens  # type: ignore[union-attr]
    r = await api.patch(f"/admin/clients/{cid}", json={"dpop_bound_access_tokens": False})
    assert r.status_code == 200 and r.json()["dpop_bound_access_tokens"] is False
    r = await api.patch(f"/admin/clients/{cid}", json={"dpop_bound_access_tokens": "yes"})
    assert r.status_code == 422


async def test_token_exchange_registration_round_trips(api, container) -> None:
    grant = "urn:ietf:params:oauth:grant-type:token-exchange"
    r = await api.post("/admin/clients", json={
        "name": "BFF", "type": "web", "redirect_uris": ["https://bff.example/cb"],
        "grant_types": ["authorization_code", "refresh_token", grant],
        "token_exchange_audiences": ["https://orders.example"],
    })  # fmt: skip
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["grant_types"][-1] == grant and created["token_exchange_audiences"] == ["https://orders.example"]
    cid = created["client_id"]
    r = await api.patch(f"/admin/clients/{cid}", json={"token_exchange_audiences": ["https://inventory.example"]})
    assert r.status_code == 200 and r.json()["token_exchange_audiences"] == ["https://inventory.example"]
    assert container.clients.get(cid).token_exchange_audiences == ["https://inventory.example"]
    issuer = container.settings.issuer
    for bad in ([issuer], [f"{issuer}/admin"], ["http://orders.example"], ["no-such-client"], "https://x.example"):
        r = await api.patch(f"/admin/clients/{cid}", json={"token_exchange_audiences": bad})
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", bad
    r = await api.post("/admin/clients", json={
        "name": "App", "type": "native", "redirect_uris": ["http://127.0.0.1/cb"],
        "grant_types": ["authorization_code", grant],
    })  # fmt: skip
    assert r.status_code == 422 and "public clients" in r.json()["detail"]
