"""Back-channel logout for an operator, on both backends: the client fields through the admin API and the CLI,
the deliveries listed by state and dead ones retried (`idp logout deliveries`, /admin/logout-deliveries)."""

from __future__ import annotations

import json

import pytest

from idp.cli import main
from tests.adminkit import AdminApi, admin_client, mint
from tests.oauthkit import cli_environment, make_user, web_client


@pytest.fixture
def api(client, container) -> AdminApi:
    return AdminApi(client, {"authorization": f"Bearer {mint(container, admin_client(container))}"})


@pytest.fixture
def env(container, settings, monkeypatch):
    cli_environment(monkeypatch, settings)
    container.keyring.tick()
    return container


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def dead_delivery(c) -> str:
    """A session of a user that signed into a client, ended, its delivery dead. (The receiver is loopback, which
    these settings refuse: a running sender retrying it sends nothing anywhere.)"""
    rp, _ = web_client(c, name=f"RP {len(c.clients.list())}", backchannel_logout_uri="http://127.0.0.1:9/bcl")
    user = make_user(c, f"user{len(c.clients.list())}")
    _, session = c.login_sessions.login(user.id)
    c.login_sessions.signed_into(session.sid, rp.client_id)
    c.account.sign_out_everywhere(user.id)
    (d,) = c.logout_outbox.list(client_id=rp.client_id)
    token, claimed = c.logout_outbox.claim(c.clock.now(), limit=10, lease=30)
    assert [x.id for x in claimed] == [d.id]
    assert c.logout_outbox.failed(d.id, token, error="answered 500", status=500, retry_at=None)
    return d.id


async def test_admin_api_registers_changes_and_removes_the_backchannel_fields(api) -> None:
    r = await api.post("/admin/clients", json={
        "name": "Shop", "type": "web", "redirect_uris": ["https://shop.example/cb"],
        "backchannel_logout_uri": "https://shop.example/bcl?v=1", "backchannel_logout_session_required": True,
    })  # fmt: skip
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["backchannel_logout_uri"] == "https://shop.example/bcl?v=1"
    assert created["backchannel_logout_session_required"] is True
    cid = created["client_id"]
    r = await api.patch(f"/admin/clients/{cid}", json={"backchannel_logout_uri": "http://127.0.0.1:8000/bcl"})
    assert r.status_code == 200 and r.json()["backchannel_logout_uri"] == "http://127.0.0.1:8000/bcl"
    r = await api.patch(f"/admin/clients/{cid}", json={"backchannel_logout_uri": None})
    assert r.status_code == 200 and r.json()["backchannel_logout_uri"] is None
    for bad in ("https://shop.example/bcl#x", "http://shop.example/bcl", "not a uri", 5):
        r = await api.patch(f"/admin/clients/{cid}", json={"backchannel_logout_uri": bad})
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", bad


async def test_admin_api_lists_deliveries_by_state_and_retries_dead_ones(api, container) -> None:
    first, second = dead_delivery(container), dead_delivery(container)
    r = await api.get("/admin/logout-deliveries", params={"state": "dead"})
    assert r.status_code == 200
    listed = r.json()["deliveries"]
    assert {d["id"] for d in listed} == {first, second} and "claim" not in listed[0]
    assert listed[0]["last_error"] == "answered 500" and listed[0]["last_status"] == 500
    assert (await api.get("/admin/logout-deliveries", params={"state": "nope"})).status_code == 422
    assert (await api.get("/admin/logout-deliveries", params={"limit": "0"})).status_code == 422
    r = await api.post("/admin/logout-deliveries/retry", json={"ids": [first]})
    assert r.status_code == 200 and r.json() == {"retried": [first]}
    pending = (await api.get("/admin/logout-deliveries", params={"state": "pending"})).json()["deliveries"]
    assert [d["id"] for d in pending] == [first]  # due now (the app's sender may be trying it already)
    r = await api.post("/admin/logout-deliveries/retry", json={})
    assert r.json() == {"retried": [second]}
    assert (await api.post("/admin/logout-deliveries/retry", json={"ids": "x"})).status_code == 422
    assert (await api.post("/admin/logout-deliveries/retry", json={"other": 1})).status_code == 422
    for body in ({"ids": ["a\x00b"]}, {"client_id": "c\x00"}, {"ids": [""]}):
        assert (await api.post("/admin/logout-deliveries/retry", json=body)).status_code == 422, body
    r = await api.get("/admin/logout-deliveries", params={"client_id": "c\x00"})
    assert r.status_code == 422
    events = [e for e in container.audit.query(action="logout.retried")]
    assert len(events) == 2 and all(e.actor.startswith("admin:") for e in events)


def test_cli_sets_the_backchannel_fields(env, capsys) -> None:
    code, out, err = run(capsys, "clients", "create", "--name", "Shop", "--type", "web", "--redirect-uri",
                         "https://shop.example/cb", "--backchannel-logout-uri", "https://shop.example/bcl",
                         "--backchannel-logout-session-required", "--json")  # fmt: skip
    assert code == 0, err
    created = json.loads(out)
    assert created["backchannel_logout_uri"] == "https://shop.example/bcl"
    assert created["backchannel_logout_session_required"] is True
    cid = created["client_id"]
    code, out, _ = run(capsys, "clients", "update", cid, "--no-backchannel-logout-session-required", "--json")
    assert code == 0 and json.loads(out)["backchannel_logout_session_required"] is False
    code, out, _ = run(capsys, "clients", "update", cid, "--no-backchannel-logout-uri", "--json")
    assert code == 0 and json.loads(out)["backchannel_logout_uri"] is None
    code, _, err = run(capsys, "clients", "update", cid, "--backchannel-logout-uri", "https://shop.example/#frag")
    assert code == 2 and "fragment" in err and err.count("\n") == 1


def test_cli_lists_and_retries_dead_deliveries(env, capsys) -> None:
    dead = dead_delivery(env)
    code, out, _ = run(capsys, "logout", "deliveries", "list", "--state", "dead", "--json")
    assert code == 0 and [d["id"] for d in json.loads(out)] == [dead]
    code, out, _ = run(capsys, "logout", "deliveries", "list", "--state", "dead")
    assert code == 0 and dead in out and "answered 500" in out
    code, out, _ = run(capsys, "logout", "deliveries", "retry", dead, "--json")
    assert code == 0 and json.loads(out) == {"retried": [dead]}
    assert env.logout_outbox.get(dead).state == "pending"
    code, _, err = run(capsys, "logout", "deliveries", "retry", dead)
    assert code == 2 and "no" in err
    assert [e.actor for e in env.audit.query(action="logout.retried")][0].startswith("cli")


def _signed_into_rp(c):
    rp, _ = web_client(c, name="Shop", backchannel_logout_uri="http://127.0.0.1:9/bcl")
    user = make_user(c, "bob")
    _, session = c.login_sessions.login(user.id)
    c.login_sessions.signed_into(session.sid, rp.client_id)
    return user, session, rp


def test_cli_session_revocation_owes_the_rp_a_token(env, capsys) -> None:
    user, session, rp = _signed_into_rp(env)
    code, _, err = run(capsys, "sessions", "end", session.sid, "--reason", "lost phone")
    assert code == 0, err
    assert [(d.client_id, d.sid, d.reason) for d in env.logout_outbox.list()] == [
        (rp.client_id, session.sid, "lost phone")
    ]
    _, again = env.login_sessions.login(user.id)
    env.login_sessions.signed_into(again.sid, rp.client_id)
    code, _, err = run(capsys, "sessions", "end-all", "bob", "--reason", "stolen laptop")
    assert code == 0, err
    assert {d.sid for d in env.logout_outbox.list()} == {session.sid, again.sid}


async def test_admin_api_session_revocation_owes_the_rp_a_token(api, container) -> None:
    user, session, rp = _signed_into_rp(container)
    r = await api.delete(f"/admin/users/{user.id}/sessions/{session.sid}")
    assert r.status_code == 204
    _, again = container.login_sessions.login(user.id)
    container.login_sessions.signed_into(again.sid, rp.client_id)
    r = await api.delete(f"/admin/users/{user.id}/sessions")
    assert r.status_code == 200
    r = await api.post("/admin/deny-list", json={"kind": "subject", "value": user.id, "reason": "stolen"})
    assert r.status_code == 201
    assert sorted(d.sid for d in container.logout_outbox.list()) == sorted([session.sid, again.sid])
