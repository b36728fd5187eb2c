"""UserAdmin: each operator action writes its audit event, and disabling or a reset ends what it must."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from idp.events import Events, UserDisabled
from idp.users.admin import UserAdmin
from idp.users.directory import User

USER = User("u1", "bob", None, False, None, "hash", False, 0.0, 0.0)


class Directory:
    def create(self, username: str, password: str, **_: Any) -> User:
        return replace(USER, username=username)

    def set_disabled(self, username: str, disabled: bool) -> User:
        return replace(USER, disabled=disabled)

    def set_password(self, user: User, password: str) -> User:
        return replace(user, password_hash=f"h({password})")


class Audit:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str | None, dict[str, Any]]] = []

    def record(self, action: str, *, actor: str = "system", subject: str | None = None, **detail: Any) -> None:
        self.rows.append((action, actor, subject, detail))


def setup() -> tuple[UserAdmin, Audit, list[tuple[str, ...]]]:
    calls: list[tuple[str, ...]] = []

    def sign_out(user_id: str, actor: str, reason: str) -> int:
        calls.append(("sign_out", user_id, actor, reason))
        return 2

    audit, events = Audit(), Events()
    events.subscribe(UserDisabled, lambda e: calls.append(("disabled", e.user_id, e.actor)))
    admin = UserAdmin(Directory(), audit, sign_out_everywhere=sign_out, events=events)  # type: ignore[arg-type]
    return admin, audit, calls


def test_create_writes_user_created() -> None:
    admin, audit, _ = setup()
    admin.create("bob", "pw", actor="cli")
    assert audit.rows == [("user.created", "cli", "u1", {})]


def test_disable_publishes_user_disabled_and_enable_does_not() -> None:
    admin, audit, calls = setup()
    admin.set_disabled("bob", True, actor="admin:ops")
    admin.set_disabled("bob", False, actor="admin:ops")
    assert calls == [("disabled", "u1", "admin:ops")]
    assert [r[:3] for r in audit.rows] == [("user.disabled", "admin:ops", "u1"), ("user.enabled", "admin:ops", "u1")]


def test_reset_signs_out_everywhere_unless_asked_not_to() -> None:
    admin, audit, calls = setup()
    assert admin.reset_password(USER, "new", actor="cli", sign_out=True, reason="password reset") == 2
    assert admin.reset_password(USER, "new", actor="cli", sign_out=False, reason="password reset") == 0
    assert calls == [("sign_out", "u1", "cli", "password reset")]
    assert audit.rows == [
        ("user.password_reset", "cli", "u1", {"signed_out": True}),
        ("user.password_reset", "cli", "u1", {"signed_out": False}),
    ]
