"""Account.sign_out_everywhere is the one "sign out everywhere": sessions, refresh tokens, a subject cut-off,
and one ``user.signed_out_everywhere`` event naming who asked (the person by default)."""

from __future__ import annotations

from typing import Any

from idp.events import UserDisabled
from idp.sessions.account import Account


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def end_all_for_user(self, user_id: str, *, actor: str, reason: str) -> list[str]:
        self.calls.append(("end_all", user_id, actor, reason))
        return ["s1", "s2"]

    def everything_for_user(self, user_id: str, *, actor: str, reason: str) -> None:
        self.calls.append(("everything", user_id, actor, reason))

    def record(self, action: str, **kw: Any) -> None:
        self.calls.append((action, kw))


def account(r: Recorder) -> Account:
    return Account(
        sessions=r, consents=None, directory=None, signout=r, clients=None, grants=None, throttle=None,  # type: ignore[arg-type]
        audit=r, clock=None,  # type: ignore[arg-type]
    )  # fmt: skip


def test_the_person_themself() -> None:
    r = Recorder()
    assert account(r).sign_out_everywhere("u1") == 2
    assert r.calls == [
        ("end_all", "u1", "u1", "sign out everywhere"),
        ("everything", "u1", "u1", "sign out everywhere"),
        ("user.signed_out_everywhere", {"actor": "u1", "subject": "u1", "sessions": 2}),
    ]


def test_an_operator_on_their_behalf() -> None:
    r = Recorder()
    account(r).sign_out_everywhere("u1", actor="cli:root", reason="lost laptop")
    assert r.calls[-1] == ("user.signed_out_everywhere", {"actor": "cli:root", "subject": "u1", "sessions": 2})
    assert r.calls[0] == ("end_all", "u1", "cli:root", "lost laptop")


def test_disabling_ends_everything_without_the_event() -> None:
    r = Recorder()
    account(r).user_disabled(UserDisabled("u1", "admin:ops"))
    assert r.calls == [
        ("end_all", "u1", "admin:ops", "user disabled"),
        ("everything", "u1", "admin:ops", "user disabled"),
    ]
