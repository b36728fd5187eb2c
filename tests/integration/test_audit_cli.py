"""`idp audit list`: filters by subject, action and time (ISO 8601 or a duration), text and --json."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from idp.cli import main
from idp.config import Settings
from idp.observability.audit import parse_since
from idp.services import Services
from tests.oauthkit import cli_environment


@pytest.fixture
def env(container: Services, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Services:
    cli_environment(monkeypatch, settings)
    return container


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_audit_list_filters_and_formats(env: Services, clock, capsys) -> None:
    clock.advance(-3 * 86_400)
    env.audit.record("login", actor="u1", subject="u1", ip="203.0.113.5")
    clock.advance(3 * 86_400)
    env.audit.record("login", actor="u2", subject="u2")
    env.audit.record("key.compromised", actor="admin:ops", kid="k1")

    code, out, _ = run(capsys, "audit", "list", "--json")
    assert code == 0
    events = json.loads(out)
    assert [e["action"] for e in events] == ["key.compromised", "login", "login"]
    assert events[0]["detail"] == {"kid": "k1"} and events[0]["actor"] == "admin:ops"

    _, out, _ = run(capsys, "audit", "list", "--subject", "u1", "--json")
    assert [e["subject"] for e in json.loads(out)] == ["u1"]
    _, out, _ = run(capsys, "audit", "list", "--since", "1d", "--action", "login", "--json")
    assert [e["subject"] for e in json.loads(out)] == ["u2"]
    day = datetime.fromtimestamp(time.time() - 2 * 86_400, UTC).strftime("%Y-%m-%d")
    _, out, _ = run(capsys, "audit", "list", "--since", day, "--json")
    assert len(json.loads(out)) == 2

    code, out, _ = run(capsys, "audit", "list")
    lines = out.strip().splitlines()
    assert len(lines) == 3 and "key.compromised" in lines[-1] and "kid=k1" in lines[-1]  # oldest first
    assert "subject=u1" in lines[0] and lines[0][:4].isdigit()
    _, out, _ = run(capsys, "audit", "list", "--action", "nothing.like.this")
    assert out.strip() == "(no events)"


@pytest.mark.parametrize("argv", [["--since", "last tuesday"], ["--since", "5y"], ["--limit", "0"], ["--limit", "x"]])
def test_bad_arguments_exit_2_with_one_line(env: Services, capsys, argv) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["audit", "list", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_parse_since() -> None:
    now = 1_700_000_000.0
    assert parse_since("90s", now) == now - 90
    assert parse_since("15m", now) == now - 900
    assert parse_since("24h", now) == now - 86_400
    assert parse_since("7d", now) == now - 7 * 86_400
    assert parse_since("2w", now) == now - 14 * 86_400
    assert parse_since("2023-11-14T22:13:20Z", now) == 1_700_000_000
    assert parse_since("2023-11-14T23:13:20+01:00", now) == 1_700_000_000
    assert parse_since("2023-11-14", now) == datetime(2023, 11, 14, tzinfo=UTC).timestamp()
    for bad in ("", "soon", "-5m", "5 m", "1e9s"):
        with pytest.raises(ValueError):
            parse_since(bad, now)
