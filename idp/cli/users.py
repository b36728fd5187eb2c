"""``idp users``: create, set a password, list, disable/enable; through :class:`idp.users.admin.UserAdmin`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from idp.cli.common import CliError, Handler, leaf, out, user_named
from idp.services import Services

ACTOR = "cli"


def users_create(c: Services, args: argparse.Namespace) -> None:
    if not args.password_stdin:
        raise CliError("--password-stdin is required (passwords never go on the command line)")
    password = sys.stdin.readline().rstrip("\n")
    user = c.user_admin.create(args.username, password, actor=ACTOR, email=args.email, name=args.name)
    out(args, {"id": user.id, "username": user.username}, f"created {user.username} (sub {user.id})")


def users_set_password(c: Services, args: argparse.Namespace) -> None:
    """A new password (the same rules as everywhere: idp.users.password_policy); other sessions end unless kept."""
    if not args.password_stdin:
        raise CliError("--password-stdin is required (passwords never go on the command line)")
    user = user_named(c, args.username)
    password = sys.stdin.readline().rstrip("\n")
    ended = c.user_admin.reset_password(
        user, password, actor=ACTOR, sign_out=not args.keep_sessions, reason="password reset"
    )
    out(args, {"username": user.username, "sessions_ended": ended}, f"password set for {user.username}")


def users_list(c: Services, args: argparse.Namespace) -> None:
    rows = [
        {"id": u.id, "username": u.username, "email": u.email, "disabled": u.disabled} for u in c.directory.store.list()
    ]
    out(
        args,
        rows,
        "\n".join(f"{r['id']}  {r['username']}{'  (disabled)' if r['disabled'] else ''}" for r in rows) or "(no users)",
    )


def _users_set_disabled(disabled: bool) -> Handler:
    def handler(c: Services, args: argparse.Namespace) -> None:
        user = c.user_admin.set_disabled(args.username, disabled, actor=ACTOR)
        out(args, {"username": user.username, "disabled": disabled}, f"{user.username}: disabled={disabled}")

    return handler


def register(sub: Any) -> None:
    us = sub.add_parser("users", help="manage users").add_subparsers(dest="sub", required=True)
    q = leaf(us, "create", users_create, "create a user; the password is read from stdin")
    q.add_argument("--username", required=True)
    q.add_argument("--email")
    q.add_argument("--name")
    q.add_argument("--password-stdin", action="store_true")
    q = leaf(us, "set-password", users_set_password, "set a user's password, read from stdin")
    q.add_argument("username")
    q.add_argument("--password-stdin", action="store_true")
    q.add_argument("--keep-sessions", action="store_true", help="do not sign the user out everywhere")
    leaf(us, "list", users_list, "list users")
    leaf(us, "disable", _users_set_disabled(True), "disable a user and end their sessions").add_argument("username")
    leaf(us, "enable", _users_set_disabled(False), "enable a user").add_argument("username")
