"""The ``idp`` command. Bad arguments or settings: one clear line on stderr, exit code 2.

Each command group is a module with ``register(subparsers)``; a leaf sets either ``run(args)``
(commands that build what they need: serve, db) or ``handler(services, args)``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from idp.cli import bff, clients, db, deny, keys, logout, serve, sessions, users
from idp.cli.common import EXIT_USAGE, CliError, services
from idp.clients.model import ClientValidationError
from idp.config import ConfigError
from idp.observability import audit
from idp.services import StartupError
from idp.store.db import SchemaError
from idp.users.directory import UserError

__all__ = ["EXIT_USAGE", "GROUPS", "CliError", "build_parser", "main"]

GROUPS: tuple[Callable[[Any], None], ...] = (
    serve.register,  # idp serve
    db.register,  # idp db upgrade
    clients.register,  # idp clients ...
    users.register,  # idp users ...
    keys.register,  # idp keys ...
    audit.register,  # idp audit list
    deny.register,  # idp deny ...
    sessions.register,  # idp sessions list|end|end-all
    logout.register,  # idp logout deliveries list|retry
    bff.register,  # idp bff serve
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="idp", description="OAuth 2.1 / OpenID Connect identity provider.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in GROUPS:
        register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if hasattr(args, "run"):
            return int(args.run(args) or 0)
        c = services()
        try:
            args.handler(c, args)
        finally:
            c.close()
        return 0
    except (ConfigError, StartupError, SchemaError, CliError, ClientValidationError, UserError) as exc:
        print(f"idp: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
