"""An operator resets a person's second factors and sets their flags, from the CLI and the admin API (the
responses checked against /admin/openapi.json); each change audited, sessions ended unless kept."""

from __future__ import annotations

import json

import pytest

from idp.clock import FrozenClock
from idp.services import Services
from idp.sessions.factors import totp
from tests.adminkit import AdminApi, admin_client, mint
from tests.integration.test_cli import env, run  # noqa: F401  (the CLI fixture and runner)
from tests.pagekit import make_user


@pytest.fixture
def api(client, container) -> AdminApi:
    return AdminApi(client, {"authorization": f"Bearer {mint(container, admin_client(container))}"})


def enrol(c: Services, clock: FrozenClock, user_id: str, username: str) -> None:
    started = c.factors.start_totp(user_id, username)
    c.factors.confirm_totp(user_id, started.factor_id, totp.code_at(started.secret, totp.step_at(clock.now())),
                           ip="127.0.0.1")  # fmt: skip
    c.factors.new_recovery_codes(user_id)


def actions(c: Services, user_id: str) -> list[str]:
    return [e.action for e in c.audit.query(subject=user_id)]


async def test_admin_api_lists_and_resets_factors(api, container, clock) -> None:
    user = make_user(container)
    enrol(container, clock, user.id, user.username)
    container.login_sessions.login(user.id, amr=("pwd", "otp"))
    listed = (await api.get(f"/admin/users/{user.id}/factors")).json()
    assert [f["kind"] for f in listed["factors"]] == ["totp"] and listed["recovery_codes_left"] == 10
    assert "secret" not in json.dumps(listed)
    sessions = (await api.get(f"/admin/users/{user.id}/sessions")).json()["sessions"]
    assert set(sessions[0]["factors"]) == {"pwd", "otp"}
    r = await api.post(f"/admin/users/{user.id}/factors/reset", json={})
    assert r.status_code == 200 and r.json() == {"user_id": user.id, "factors_removed": 1, "sessions_ended": 1}
    assert not container.factors.has_second_factor(user.id) and container.factors.recovery_left(user.id) == 0
    assert "factor.reset" in actions(container, user.id)
    assert (await api.post("/admin/users/nobody/factors/reset", json={})).status_code == 404
    assert (await api.post(f"/admin/users/{user.id}/factors/reset", json={"x": 1})).status_code == 422


async def test_admin_api_reset_can_keep_sessions(api, container, clock) -> None:
    user = make_user(container)
    enrol(container, clock, user.id, user.username)
    container.login_sessions.login(user.id)
    r = await api.post(f"/admin/users/{user.id}/factors/reset", json={"sign_out": False})
    assert r.json()["sessions_ended"] == 0 and len(container.login_sessions.list_for_user(user.id)) == 1


async def test_admin_api_sets_flags(api, container) -> None:
    user = make_user(container)
    r = await api.put(f"/admin/users/{user.id}/flags", json={"flags": ["admin", "ops"]})
    assert r.status_code == 200 and r.json()["flags"] == ["admin", "ops"]
    assert container.directory.store.get(user.id).flags == ["admin", "ops"]
    assert (await api.put(f"/admin/users/{user.id}/flags", json={"flags": ["Not OK"]})).status_code == 422
    assert (await api.put(f"/admin/users/{user.id}/flags", json={"flags": "admin"})).status_code == 422
    assert "user.flags_changed" in actions(container, user.id)


def test_cli_lists_and_resets_factors(env: Services, capsys, clock) -> None:  # noqa: F811
    bob = env.directory.create("bob", "correct horse battery")
    enrol(env, clock, bob.id, bob.username)
    env.login_sessions.login(bob.id)
    code, out, _ = run(capsys, "users", "factors", "bob", "--json")
    assert code == 0 and json.loads(out)["recovery_codes_left"] == 10
    code, out, _ = run(capsys, "users", "reset-factors", "bob", "--keep-sessions", "--json")
    assert code == 0 and json.loads(out) == {"username": "bob", "factors_removed": 1, "sessions_ended": 0}
    enrol(env, clock, bob.id, bob.username)
    code, out, _ = run(capsys, "users", "reset-factors", "bob", "--json")
    assert json.loads(out)["sessions_ended"] == 1 and not env.factors.has_second_factor(bob.id)
    assert actions(env, bob.id).count("factor.reset") == 2
    assert run(capsys, "users", "reset-factors", "nobody")[0] == 2


def test_cli_sets_flags(env: Services, capsys) -> None:  # noqa: F811
    env.directory.create("bob", "correct horse battery")
    code, out, _ = run(capsys, "users", "flags", "bob", "--set", "admin", "--json")
    assert code == 0 and json.loads(out)["flags"] == ["admin"]
    assert run(capsys, "users", "flags", "bob", "--set", "BAD FLAG")[0] == 2
    code, out, _ = run(capsys, "users", "flags", "bob", "--set", "", "--json")
    assert json.loads(out)["flags"] == []
