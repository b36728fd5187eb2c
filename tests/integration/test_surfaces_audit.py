"""The CLI and the admin API call the same use cases, so one operator action writes the same audit events
from either: the same actions with the same fields, only the actor differs (``cli`` vs ``admin:CLIENT_ID``)."""

from __future__ import annotations

import io
from typing import Any

import pytest

from idp.cli import main
from idp.config import Settings
from idp.services import Services
from tests.adminkit import AdminApi, admin_client, mint
from tests.oauthkit import cli_environment
from tests.pagekit import PASSWORD

NEW_PASSWORD = "another long passphrase here"


@pytest.fixture
def env(container: Services, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Services:
    cli_environment(monkeypatch, settings)
    container.keyring.tick()
    return container


@pytest.fixture
def api(client, env) -> AdminApi:
    return AdminApi(client, {"authorization": f"Bearer {mint(env, admin_client(env))}"})


class Rows:
    """The audit events written since the last call, as (action, actor kind, fields)."""

    def __init__(self, c: Services) -> None:
        self.c = c
        self.seen = {e.id for e in c.audit.query(limit=1000)}

    def new(self) -> list[tuple[str, str, tuple[str, ...], bool, bool]]:
        events = [e for e in self.c.audit.query(limit=1000) if e.id not in self.seen]
        self.seen |= {e.id for e in events}
        return sorted(
            (e.action, e.actor.split(":")[0], tuple(sorted(e.detail)), e.subject is None, e.client_id is None)
            for e in events
        )


def cli(monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: str = "") -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    assert main(list(argv)) == 0


def same(a: list[Any], b: list[Any]) -> None:
    assert a, "the action wrote no audit event"
    assert [(r[0], *r[2:]) for r in a] == [(r[0], *r[2:]) for r in b]
    assert "cli" in {r[1] for r in a} and "admin" in {r[1] for r in b}


async def test_user_actions_write_the_same_events(env, api, monkeypatch, capsys) -> None:
    rows = Rows(env)
    cli(monkeypatch, "users", "create", "--username", "bob", "--password-stdin", stdin=PASSWORD + "\n")
    by_cli = rows.new()
    assert (await api.post("/admin/users", json={"username": "carol", "password": PASSWORD})).status_code == 201
    same(by_cli, rows.new())
    assert [r[0] for r in by_cli] == ["user.created"]
    carol = env.directory.store.by_username("carol")

    for cli_args, path, body in (
        (("users", "set-password", "bob", "--password-stdin"), "password", {"password": NEW_PASSWORD}),
        (("sessions", "end-all", "bob", "--reason", "lost laptop"), "sessions", None),
        (("users", "disable", "bob"), "disable", {}),
        (("users", "enable", "bob"), "enable", {}),
    ):
        cli(monkeypatch, *cli_args, stdin=NEW_PASSWORD + "\n")
        by_cli = rows.new()
        url = f"/admin/users/{carol.id}/{path}"
        r = await (api.delete(url) if body is None else api.post(url, json=body))
        assert r.status_code == 200, r.text
        same(by_cli, rows.new())
    capsys.readouterr()


async def test_key_actions_write_the_same_events(env, api, monkeypatch, capsys) -> None:
    alg = env.keyring.policy.algorithms[0]
    rows = Rows(env)
    cli(monkeypatch, "keys", "rotate", "--alg", alg)
    by_cli = rows.new()
    assert (await api.post("/admin/keys/rotate", json={"alg": alg})).status_code == 200  # the same pending key
    same(by_cli, rows.new())
    assert [r[0] for r in by_cli] == ["key.rotated"]
    for action, event in (("retire", "key.retired"), ("revoke", "key.compromised")):
        mine = env.keyring.rotate(alg).kid  # the keyring itself audits nothing: only the use case does
        cli(monkeypatch, "keys", action, mine)
        by_cli = rows.new()
        theirs = env.keyring.rotate(alg).kid
        assert (await api.post(f"/admin/keys/{theirs}/{action}")).status_code == 200
        same(by_cli, rows.new())
        assert event in [r[0] for r in by_cli]
    capsys.readouterr()


async def test_client_actions_write_the_same_events(env, api, monkeypatch, capsys) -> None:
    rows = Rows(env)
    cli(monkeypatch, "clients", "create", "--name", "Billing", "--type", "service", "--scope", "api:read")
    by_cli = rows.new()
    r = await api.post("/admin/clients", json={"name": "Billing", "type": "service", "scope": "api:read"})
    same(by_cli, rows.new())
    assert [r[0] for r in by_cli] == ["client.created"]
    theirs = r.json()["client_id"]
    mine = next(c.client_id for c in env.clients.list() if c.name == "Billing" and c.client_id != theirs)
    for cli_args, call in (
        (("clients", "rotate-secret", mine), lambda: api.post(f"/admin/clients/{theirs}/secret")),
        (("clients", "disable", mine), lambda: api.patch(f"/admin/clients/{theirs}", json={"disabled": True})),
        (("clients", "delete", mine), lambda: api.delete(f"/admin/clients/{theirs}")),
    ):
        cli(monkeypatch, *cli_args)
        by_cli = rows.new()
        assert (await call()).status_code in (200, 204)
        same(by_cli, rows.new())
    capsys.readouterr()
