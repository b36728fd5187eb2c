"""``idp db upgrade``: apply the migrations (idp/migrations, package data)."""

from __future__ import annotations

import argparse
from typing import Any

from idp.config import load_settings
from idp.services import build_services, ping_database
from idp.store.db import upgrade


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    c = build_services(load_settings())
    ping_database(c)
    upgrade(c.engine)
    c.close()
    print("database is at the latest schema")
    return 0


def register(sub: Any) -> None:
    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="apply migrations").set_defaults(run=cmd_db_upgrade)
