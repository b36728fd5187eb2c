"""The first-start demo: only a local trial gets one by default, and only a local trial's start shows its secrets.

A local trial is the embedded default (SQLite, in-process store) on a loopback issuer. Anything else
(PostgreSQL + Redis as in docker-compose.yml, a public issuer) gets no demo rows unless IDP_DEMO=true,
and even then no secret reaches stdout, where a container's log collector would keep it.
"""

from __future__ import annotations

from typing import Any

import pytest
from asgi_lifespan import LifespanManager

import idp.app
from idp.config import Settings
from idp.services import Services

LOOPBACK = "http://127.0.0.1:8000"
PUBLIC = "https://id.example.com"


async def start(container: Services, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run the app's start-up once; returns (the demo bootstrap made or None, what the start printed)."""
    made: list[dict[str, Any] | None] = []
    real = idp.app.bootstrap

    def recording(c: Services) -> dict[str, Any] | None:
        made.append(real(c))
        return made[-1]

    monkeypatch.setattr(idp.app, "bootstrap", recording)
    capsys.readouterr()
    async with LifespanManager(idp.app.create_app(services=container), startup_timeout=30):
        pass
    return made[0], capsys.readouterr().out


def demo_rows(c: Services) -> list[str]:
    names = [cl.name for cl in c.clients.list() if cl.name.startswith("Demo ")]
    return names + (["user demo"] if c.directory.store.by_username("demo") else [])


def secrets_of(demo: dict[str, Any]) -> list[str]:
    return [
        demo["user"]["password"],
        demo["web_client"]["client_secret"],
        demo["service_client"]["client_secret"],
    ]


@pytest.mark.parametrize("settings_overrides", [{"issuer": LOOPBACK, "demo": None}])
async def test_only_the_embedded_default_on_a_loopback_issuer_gets_a_demo(
    settings: Settings, container: Services, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    demo, out = await start(container, monkeypatch, capsys)
    if settings.redis_url:  # PostgreSQL + Redis, as in docker-compose.yml: nothing, even on a loopback issuer
        assert demo is None and demo_rows(container) == []
        assert "demo" not in out and "secret" not in out
        return
    assert demo is not None and len(demo_rows(container)) == 4
    assert all(secret in out for secret in secrets_of(demo))  # a local trial shows what to copy, once
    again, out = await start(container, monkeypatch, capsys)
    assert again is None and out == ""


@pytest.mark.parametrize("settings_overrides", [{"issuer": PUBLIC, "demo": None}])
async def test_a_public_issuer_gets_no_demo_on_any_store(
    container: Services, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    demo, out = await start(container, monkeypatch, capsys)
    assert demo is None and demo_rows(container) == []
    assert "demo" not in out and "secret" not in out


@pytest.mark.parametrize("settings_overrides", [{"issuer": PUBLIC, "demo": True}])
async def test_an_explicit_demo_elsewhere_is_created_with_its_secrets_withheld(
    container: Services, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    demo, out = await start(container, monkeypatch, capsys)
    assert demo is not None and len(demo_rows(container)) == 4
    assert demo["service_client"]["client_id"] in out  # what to rotate is named ...
    assert not any(secret in out for secret in secrets_of(demo))  # ... but no usable credential is printed
    assert "client_secret=" not in out


@pytest.mark.parametrize("settings_overrides", [{"issuer": LOOPBACK, "demo": False}])
async def test_demo_false_turns_it_off_for_a_local_trial(
    container: Services, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    demo, out = await start(container, monkeypatch, capsys)
    assert demo is None and demo_rows(container) == [] and out == ""


def test_the_demo_setting_reads_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from idp.config import load_settings

    monkeypatch.delenv("IDP_DEMO", raising=False)
    assert load_settings(data_dir=tmp_path).create_demo  # the defaults: SQLite, no Redis, http://127.0.0.1:8000
    assert not load_settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:6379/0").create_demo
    assert not load_settings(data_dir=tmp_path, database_url="postgresql://u@db:5432/idp").create_demo
    assert not load_settings(data_dir=tmp_path, issuer=PUBLIC).create_demo
    monkeypatch.setenv("IDP_DEMO", "1")
    explicit = load_settings(data_dir=tmp_path, issuer=PUBLIC)
    assert explicit.create_demo and not explicit.local_trial
    monkeypatch.setenv("IDP_DEMO", "")  # as .env.example leaves it: unset
    assert load_settings(data_dir=tmp_path).create_demo and not load_settings(data_dir=tmp_path, issuer=PUBLIC).demo
    monkeypatch.setenv("IDP_DEMO", "false")
    assert not load_settings(data_dir=tmp_path).create_demo
