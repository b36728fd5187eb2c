"""``idp logout deliveries``: the back-channel logout outbox (:mod:`idp.logout.admin`).

idp logout deliveries list [--state dead] [--client CLIENT_ID] [--limit N] [--json]
idp logout deliveries retry [ID ...] [--client CLIENT_ID]    dead deliveries (all, or these) sent again
"""

from __future__ import annotations

import argparse
from typing import Any

from idp.cli.common import CliError, fmt_time, leaf, operator, out
from idp.logout.admin import DeliveryQueryError, list_deliveries, retry_dead
from idp.services import Services
from idp.store.logout_repo import STATES


def _list(c: Services, args: argparse.Namespace) -> None:
    try:
        rows = list_deliveries(c, state=args.state, client_id=args.client, limit=args.limit)
    except DeliveryQueryError as exc:
        raise CliError(str(exc)) from None
    text = "\n".join(
        f"{d.id}  {d.state:<9} {d.client_id:<16} attempts {d.attempts:<3} {fmt_time(d.created_at)}"
        + (f"  {d.last_error}" if d.last_error and d.state != "delivered" else "")
        for d in rows
    )
    out(args, [d.view() for d in rows], text or "(no deliveries)")


def _retry(c: Services, args: argparse.Namespace) -> None:
    try:
        revived = retry_dead(c, actor=operator(), ids=args.ids, client_id=args.client)
    except DeliveryQueryError as exc:
        raise CliError(str(exc)) from None
    if args.ids and not revived:
        raise CliError("none of these is a dead delivery")
    out(args, {"retried": revived}, f"{len(revived)} dead delivery(ies) due again")


def register(sub: Any) -> None:
    group = sub.add_parser("logout", help="back-channel logout").add_subparsers(dest="logout_command", required=True)
    deliveries = group.add_parser("deliveries", help="logout tokens owed to clients").add_subparsers(
        dest="deliveries_command", required=True
    )
    q = leaf(deliveries, "list", _list, "list deliveries, newest first")
    q.add_argument("--state", choices=STATES)
    q.add_argument("--client", help="only this client_id")
    q.add_argument("--limit", type=int, default=100)
    q = leaf(deliveries, "retry", _retry, "send dead deliveries again (every dead one, or the ids given)")
    q.add_argument("ids", nargs="*", help="delivery ids (default: every dead one)")
    q.add_argument("--client", help="only this client_id's")
