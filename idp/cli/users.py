"""``idp users``: create, set a password, list, disable/enable, second factors and flags; through
:class:`idp.users.admin.UserAdmin`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from idp.cli.common import CliError, Handler, leaf, out, user_named
from idp.services import Services
from idp.users.directory import UserError

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


def users_factors(c: Services, args: argparse.Namespace) -> None:
    user = user_named(c, args.username)
    factors = [{"id": f.id, "kind": f.kind, "name": f.name, "created_at": f.created_at,
                "last_used_at": f.last_used_at} for f in c.factors.confirmed(user.id)]  # fmt: skip
    left = c.factors.recovery_left(user.id)
    lines = [f"{f['id']}  {f['kind']}  {f['name']}" for f in factors] or ["(no second factor)"]
    out(args, {"username": user.username, "factors": factors, "recovery_codes_left": left},
        "\n".join([*lines, f"recovery codes left: {left}"]))  # fmt: skip


def users_reset_factors(c: Services, args: argparse.Namespace) -> None:
    """Every second factor and recovery code goes (a lost phone); other sessions end unless kept."""
    user = user_named(c, args.username)
    removed, ended = c.user_admin.reset_factors(
        user, actor=ACTOR, sign_out=not args.keep_sessions, reason="second factors reset"
    )
    out(args, {"username": user.username, "factors_removed": removed, "sessions_ended": ended},
        f"{user.username}: {removed} second factor(s) removed, {ended} session(s) ended")  # fmt: skip


def users_flags(c: Services, args: argparse.Namespace) -> None:
    user = user_named(c, args.username)
    if args.set is not None:
        try:
            user = c.user_admin.set_flags(user, [f for f in args.set.split(",") if f], actor=ACTOR)
        except UserError as exc:
            raise CliError(str(exc)) from None
    out(args, {"username": user.username, "flags": user.flags}, f"{user.username}: {' '.join(user.flags) or '(none)'}")


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
    leaf(us, "factors", users_factors, "list a user's second factors (never their secrets)").add_argument("username")
    q = leaf(us, "reset-factors", users_reset_factors, "remove a user's second factors and recovery codes")
    q.add_argument("username")
    q.add_argument("--keep-sessions", action="store_true", help="do not sign the user out everywhere")
    q = leaf(us, "flags", users_flags, "show or set a user's flags (the 'flagged' second-factor policy)")
    q.add_argument("username")
    q.add_argument("--set", metavar="FLAG,FLAG", help="replace the flags; an empty string clears them")
