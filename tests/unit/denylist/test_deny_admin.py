"""DenyAdmin: a subject entry also revokes the user's refresh tokens; other kinds write the entry only."""

from __future__ import annotations

from typing import Any

from idp.denylist.admin import DenyAdmin


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def deny(self, kind: str, value: str, *, reason: str, actor: str, until: float | None = None) -> Any:
        self.calls.append(("deny", kind, value, actor, reason, until))
        return object()

    def revoke_for_user(self, user_id: str, *, actor: str, reason: str) -> int:
        self.calls.append(("grants", user_id, actor, reason))
        return 1


def test_denying_a_subject_revokes_its_refresh_tokens() -> None:
    r = Recorder()
    DenyAdmin(r, r).deny("subject", "u1", reason="stolen phone", actor="cli:ops")
    assert r.calls == [
        ("deny", "subject", "u1", "cli:ops", "stolen phone", None),
        ("grants", "u1", "cli:ops", "stolen phone"),
    ]


def test_other_kinds_only_write_the_entry() -> None:
    r = Recorder()
    DenyAdmin(r, r).deny("jti", "j1", reason="leak", actor="admin:a", until=5.0)
    assert r.calls == [("deny", "jti", "j1", "admin:a", "leak", 5.0)]
