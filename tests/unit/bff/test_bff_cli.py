"""``idp bff serve``: settings from IDP_BFF_*, --upstream and --static from the command line, refusals exit 2."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from idp.bff.config import Upstream
from idp.cli import main


@pytest.fixture
def bff_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDP_BFF_ISSUER", "https://idp.example")
    monkeypatch.setenv("IDP_BFF_ORIGIN", "https://app.example")
    monkeypatch.setenv("IDP_BFF_CLIENT_ID", "bff")
    monkeypatch.setenv("IDP_BFF_CLIENT_SECRET", "secret")
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    monkeypatch.setenv("IDP_BFF_ENCRYPTION_KEY", key)


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def run(app: Any, **kw: Any) -> None:
        seen.update(kw, app=app)

    monkeypatch.setattr(uvicorn, "run", run)
    return seen


async def test_serve_with_upstreams_and_static(bff_env: None, served: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<h1>SPA</h1>")
    argv = ["bff", "serve", "--upstream", "/api=http://127.0.0.1:9001",
            "--upstream", "/orders=http://127.0.0.1:9002;exchange=https://orders.example",
            "--static", str(tmp_path), "--port", "9100"]  # fmt: skip
    assert main(argv) == 0
    assert served["port"] == 9100 and served["host"] == "127.0.0.1"
    app = served["app"]
    assert app.state.bff.upstreams == (
        Upstream("/api", "http://127.0.0.1:9001"),
        Upstream("/orders", "http://127.0.0.1:9002", "exchange", "https://orders.example"),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://app.example") as c:
        assert "SPA" in (await c.get("/")).text
        r = await c.get("/bff/user")
        assert r.status_code == 401 and r.json()["error"] == "unauthenticated"
        for path in ("/api/x", "/orders/y"):  # proxied (SPA files come after): a session is needed first
            r = await c.get(path, headers={"X-CSRF": "1"})
            assert r.status_code == 401 and r.json()["error"] == "session_required"


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--upstream", "api=http://127.0.0.1:9001"], {}, "prefix"),
        (["--upstream", "/api=http://api.example"], {}, "loopback"),
        (["--static", "/nonexistent/dir"], {}, "not a directory"),
        ([], {"IDP_BFF_ENCRYPTION_KEY": ""}, "IDP_BFF_ENCRYPTION_KEY"),
        ([], {"IDP_BFF_COOKIE_NAME": "session"}, "__Host-"),
        ([], {"IDP_BFF_CLIENT_SECRET": ""}, "CLIENT_SECRET"),
    ],
)
def test_refusals_exit_2(
    bff_env: None, served: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    argv: list[str], env: dict[str, str], message: str,
) -> None:  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["bff", "serve", *argv]) == 2
    assert message in capsys.readouterr().err
    assert "app" not in served
