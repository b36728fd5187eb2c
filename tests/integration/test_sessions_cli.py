"""`idp sessions`: an operator lists and ends a person's sessions (ASVS V7.4.5, REQUIREMENTS 56)."""

from __future__ import annotations

import json

import pytest

from idp.cli import main
from tests.oauthkit import cli_environment
from tests.pagekit import deny_entries, make_user


@pytest.fixture
def env(container, settings, monkeypatch):
    cli_environment(monkeypatch, settings)
    return container


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_end_and_end_all(env, capsys):
    alice = make_user(env)
    _, s1 = env.login_sessions.login(alice.id, user_agent="curl/8.5.0", ip="192.0.2.1")
    _, s2 = env.login_sessions.login(alice.id)
    code, out, _ = run(capsys, "sessions", "list", "alice", "--json")
    assert code == 0 and {r["sid"] for r in json.loads(out)} == {s1.sid, s2.sid}
    assert run(capsys, "sessions", "end", s1.sid, "--reason", "lost laptop")[0] == 0
    assert not env.login_sessions.is_active(s1.sid) and env.login_sessions.is_active(s2.sid)
    code, _, err = run(capsys, "sessions", "end", s1.sid, "--reason", "again")
    assert code == 2 and "no session" in err
    code, out, _ = run(capsys, "sessions", "end-all", "alice", "--reason", "stolen phone", "--json")
    assert code == 0 and json.loads(out)["sessions_ended"] == 1
    assert env.login_sessions.list_for_user(alice.id) == []
    assert alice.id in deny_entries(env, "subject")  # another process: the deny-list row is in SQL


def test_unknown_user_and_missing_reason(env, capsys):
    assert run(capsys, "sessions", "list", "nobody")[0] == 2
    with pytest.raises(SystemExit):
        main(["sessions", "end", "sid"])
