"""``idp sessions``: see and end people's login sessions from the command line (ASVS V7.4.5).

idp sessions list USERNAME [--json]
idp sessions end SID --reason "..."              one session (its refresh tokens per IDP_LOGOUT_REVOKES_OFFLINE)
idp sessions end-all USERNAME --reason "..."     "sign out everywhere" on the person's behalf
"""

from __future__ import annotations

import argparse
import getpass
import json
import time
from typing import Any


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name in minimal containers
        return "cli"


def _fmt(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def _user(c: Any, username: str) -> Any:
    from idp.cli import CliError

    user = c.directory.store.by_username(username)
    if user is None:
        raise CliError(f"no user {username!r}")
    return user


def _list(c: Any, args: argparse.Namespace) -> None:
    from idp.sessions.devices import describe

    user = _user(c, args.username)
    rows = [
        {"sid": s.sid, "device": describe(s.user_agent), "ip": s.ip, "auth_time": s.auth_time,
         "last_seen_at": s.last_seen_at, "absolute_expires_at": s.absolute_expires_at}
        for s in c.login_sessions.list_for_user(user.id)
    ]  # fmt: skip
    text = "\n".join(
        f"{r['sid']}  {r['device']:<22} {r['ip'] or '-':<16} last seen {_fmt(r['last_seen_at'])}" for r in rows
    )
    print(json.dumps(rows, indent=2) if args.json else text or "(no sessions)")


def _end(c: Any, args: argparse.Namespace) -> None:
    from idp.cli import CliError

    if not c.login_sessions.end_sid(args.sid, actor=_actor(), reason=args.reason):
        raise CliError(f"no session {args.sid!r}")
    print(json.dumps({"ended": args.sid}) if args.json else f"ended session {args.sid}")


def _end_all(c: Any, args: argparse.Namespace) -> None:
    user = _user(c, args.username)
    ended = c.login_sessions.end_all_for_user(user.id, actor=_actor(), reason=args.reason)
    c.signout.everything_for_user(user.id, actor=_actor(), reason=args.reason)
    data = {"username": user.username, "sessions_ended": len(ended)}
    print(json.dumps(data) if args.json else f"{user.username}: {len(ended)} session(s) ended, refresh tokens revoked")


def configure(sub: Any) -> None:
    """Registered in ``idp.cli.EXTENSIONS``."""
    group = sub.add_parser("sessions", help="people's login sessions").add_subparsers(
        dest="sessions_command", required=True
    )

    def leaf(name: str, handler: Any, help_: str) -> argparse.ArgumentParser:
        q = group.add_parser(name, help=help_)
        q.add_argument("--json", action="store_true", help="machine-readable output")
        q.set_defaults(handler=handler)
        return q

    leaf("list", _list, "list a person's live sessions").add_argument("username")
    q = leaf("end", _end, "end one session by its sid")
    q.add_argument("sid")
    q.add_argument("--reason", required=True, help="why (kept in the audit log)")
    q = leaf("end-all", _end_all, "end every session of a person and revoke their tokens")
    q.add_argument("username")
    q.add_argument("--reason", required=True, help="why (kept in the audit log)")
