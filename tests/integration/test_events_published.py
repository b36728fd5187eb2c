"""The surfaces announce what an operator did: a disabled user, a compromised key (CLI and admin API)."""

from __future__ import annotations

import pytest

from idp.cli import main
from idp.config import Settings
from idp.events import Events, KeyCompromised, UserDisabled
from idp.services import Services
from tests.adminkit import AdminApi, admin_client, mint
from tests.oauthkit import cli_environment
from tests.pagekit import make_user


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every event any Events publishes (the CLI builds its own services)."""
    seen: list[object] = []
    real = Events.publish

    def recording(self: Events, event: object) -> None:
        seen.append(event)
        real(self, event)

    monkeypatch.setattr(Events, "publish", recording)
    return seen


@pytest.fixture
def env(container: Services, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Services:
    cli_environment(monkeypatch, settings)
    container.keyring.tick()
    return container


def test_the_cli_publishes_user_disabled_and_key_compromised(
    env: Services, published: list[object], capsys: pytest.CaptureFixture[str]
) -> None:
    user = make_user(env, "bob")
    assert main(["users", "disable", "bob"]) == 0
    assert main(["users", "enable", "bob"]) == 0  # enabling announces nothing
    kid = next(r.kid for r in env.keyring.rows() if r.state == "active")
    assert main(["keys", "revoke", kid]) == 0
    assert [e for e in published if isinstance(e, (UserDisabled, KeyCompromised))] == [
        UserDisabled(user.id, actor="cli"),
        KeyCompromised(kid, actor="cli"),
    ]
    capsys.readouterr()


async def test_the_admin_api_publishes_user_disabled_and_key_compromised(client, container: Services) -> None:
    ops = admin_client(container)
    api = AdminApi(client, {"authorization": f"Bearer {mint(container, ops)}"})
    seen: list[object] = []
    container.events.subscribe(UserDisabled, seen.append)
    container.events.subscribe(KeyCompromised, seen.append)
    user = make_user(container)
    assert (await api.post(f"/admin/users/{user.id}/disable")).status_code == 200
    kid = next(k["kid"] for k in (await api.get("/admin/keys")).json()["keys"] if k["state"] == "active")
    assert (await api.post(f"/admin/keys/{kid}/revoke")).status_code == 200
    actor = f"admin:{ops.client_id}"
    assert seen == [UserDisabled(user.id, actor=actor), KeyCompromised(kid, actor=actor)]
