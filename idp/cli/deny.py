"""``idp deny``: add, list and remove deny-list entries from the command line.

    idp deny subject USER_ID --reason "stolen phone"     every token of the user issued until now
    idp deny session SID --reason "..."                  every token of one login session
    idp deny client CLIENT_ID --reason "..."             every token issued to a client until now
    idp deny jti JTI --until EXP --reason "..."          one access token (until its exp)
    idp deny kid KID --reason "..."                      everything a key signed (see also `idp keys revoke`)
    idp deny list [--json]
    idp deny remove ID --reason "..."

Running IdP instances pick the change up within IDP_DENYLIST_SYNC_SECONDS (at once
through Redis pub/sub when configured) and push it to resource servers.
"""

from __future__ import annotations

import argparse
from typing import Any

from idp.cli.common import CliError, leaf, operator, out
from idp.cli.common import fmt_time as _fmt
from idp.denylist.entries import KINDS
from idp.services import Services

HELP = {
    "jti": "one access token, by its jti",
    "subject": "every token of a user (sub) issued until now",
    "session": "every token of a login session (sid) issued until now",
    "client": "every token of a client issued until now",
    "kid": "every token a signing key signed",
}


def _adder(kind: str) -> Any:
    def handler(c: Services, args: argparse.Namespace) -> None:
        try:
            entry = c.deny_admin.deny(kind, args.value, reason=args.reason, actor=operator(), until=args.until)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        out(args, entry.admin(), f"denied {kind} {entry.value} (entry {entry.id}, until {_fmt(entry.expires_at)})")

    return handler


def _list(c: Services, args: argparse.Namespace) -> None:
    entries = c.denylist.list()
    lines = [f"{e.id:>6}  {e.kind:<8} {e.value:<40} until {_fmt(e.expires_at)}  {e.actor}: {e.reason}" for e in entries]
    out(args, [e.admin() for e in entries], "\n".join(lines) or "(deny-list is empty)")


def _remove(c: Services, args: argparse.Namespace) -> None:
    if not c.denylist.remove(args.id, actor=operator(), reason=args.reason):
        raise CliError(f"no live deny-list entry {args.id}")
    out(args, {"removed": args.id}, f"removed entry {args.id}")


def register(sub: Any) -> None:
    group = sub.add_parser("deny", help="deny-list: revoke tokens everywhere within a second").add_subparsers(
        dest="deny_command", required=True
    )
    for kind in KINDS:
        q = leaf(group, kind, _adder(kind), HELP[kind])
        q.add_argument("value")
        q.add_argument("--reason", required=True, help="why (kept in the audit log)")
        q.add_argument("--until", type=float, help="keep the entry at least until this epoch time (jti: its exp)")
    leaf(group, "list", _list, "list live entries")
    q = leaf(group, "remove", _remove, "take an entry off early")
    q.add_argument("id", type=int)
    q.add_argument("--reason", default="", help="why (kept in the audit log)")
