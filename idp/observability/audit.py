"""Audit queries: ``idp audit list`` (one of ``idp.cli.GROUPS``) and the ``since`` syntax.

``--since`` takes an ISO 8601 time (``2025-01-31``, ``2025-01-31T12:00:00Z``; no
zone = UTC) or a duration back from now (``90s``, ``15m``, ``24h``, ``7d``, ``2w``).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

DURATION = re.compile(r"(\d{1,9})([smhdw])")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
MAX_LIMIT = 1000


def parse_since(text: str, now: float) -> float:
    """Seconds since the epoch; raises ValueError with a readable message."""
    text = text.strip()
    m = DURATION.fullmatch(text)
    if m:
        return now - int(m.group(1)) * UNITS[m.group(2)]
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"since: {text[:40]!r} is neither an ISO 8601 time (2025-01-31T12:00:00Z) nor a duration (15m, 24h, 7d)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def event_dict(event: Any) -> dict[str, Any]:
    out = asdict(event)
    out["time"] = datetime.fromtimestamp(event.at, UTC).isoformat().replace("+00:00", "Z")
    return out


def _since_arg(text: str) -> str:
    try:
        parse_since(text, time.time())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _audit_list(c: Any, args: argparse.Namespace) -> None:
    since = parse_since(args.since, c.clock.now()) if args.since else None
    events = c.audit.query(subject=args.subject, action=args.action, since=since, limit=args.limit)
    if args.json:
        print(json.dumps([event_dict(e) for e in events], indent=2))
        return
    if not events:
        print("(no events)")
        return
    for e in reversed(events):  # oldest first reads like a log
        d = event_dict(e)
        detail = " ".join(f"{k}={v}" for k, v in sorted(e.detail.items()))
        who = f" subject={e.subject}" if e.subject else ""
        client = f" client={e.client_id}" if e.client_id else ""
        print(f"{d['time']}  {e.action:<28} actor={e.actor}{who}{client}  {detail}".rstrip())


def _limit_arg(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--limit must be a number") from None
    if not 1 <= n <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"--limit must be 1..{MAX_LIMIT}")
    return n


def register(sub: Any) -> None:
    """Adds ``idp audit list`` to the ``idp`` command."""
    audit = sub.add_parser("audit", help="query audit events").add_subparsers(dest="sub", required=True)
    q = audit.add_parser("list", help="newest events first (printed oldest first), filtered")
    q.add_argument("--subject", help="user id (sub) the event concerns")
    q.add_argument("--action", help="e.g. login.succeeded, key.compromised, client.secret_rotated")
    q.add_argument("--since", type=_since_arg, help="ISO 8601 time or a duration back from now (15m, 24h, 7d)")
    q.add_argument("--limit", type=_limit_arg, default=100, help=f"at most this many (1..{MAX_LIMIT}, default 100)")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(handler=_audit_list)
