"""``idp sessions``: see and end people's login sessions from the command line (ASVS V7.4.5).

idp sessions list USERNAME [--json]
idp sessions end SID --reason "..."              one session (its refresh tokens per IDP_LOGOUT_REVOKES_OFFLINE)
idp sessions end-all USERNAME --reason "..."     "sign out everywhere" on the person's behalf
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from idp.cli.common import CliError, leaf, operator, user_named
from idp.cli.common import fmt_time as _fmt
from idp.services import Services
from idp.sessions.devices import describe


def _list(c: Services, args: argparse.Namespace) -> None:
    user = user_named(c, args.username)
    rows: list[dict[str, Any]] = [
        {"sid": s.sid, "device": describe(s.user_agent), "ip": s.ip, "auth_time": s.auth_time,
         "last_seen_at": s.last_seen_at, "absolute_expires_at": s.absolute_expires_at}
        for s in c.login_sessions.list_for_user(user.id)
    ]  # fmt: skip
    text = "\n".join(
        f"{r['sid']}  {r['device']:<22} {r['ip'] or '-':<16} last seen {_fmt(r['last_seen_at'])}" for r in rows
    )
    print(json.dumps(rows, indent=2) if args.json else text or "(no sessions)")


def _end(c: Services, args: argparse.Namespace) -> None:
    if not c.login_sessions.end_sid(args.sid, actor=operator(), reason=args.reason):
        raise CliError(f"no session {args.sid!r}")
    print(json.dumps({"ended": args.sid}) if args.json else f"ended session {args.sid}")


def _end_all(c: Services, args: argparse.Namespace) -> None:
    user = user_named(c, args.username)
    ended = c.account.sign_out_everywhere(user.id, actor=operator(), reason=args.reason)
    data = {"username": user.username, "sessions_ended": ended}
    print(json.dumps(data) if args.json else f"{user.username}: {ended} session(s) ended, refresh tokens revoked")


def register(sub: Any) -> None:
    group = sub.add_parser("sessions", help="people's login sessions").add_subparsers(
        dest="sessions_command", required=True
    )
    leaf(group, "list", _list, "list a person's live sessions").add_argument("username")
    q = leaf(group, "end", _end, "end one session by its sid")
    q.add_argument("sid")
    q.add_argument("--reason", required=True, help="why (kept in the audit log)")
    q = leaf(group, "end-all", _end_all, "end every session of a person and revoke their tokens")
    q.add_argument("username")
    q.add_argument("--reason", required=True, help="why (kept in the audit log)")
