"""What every command group shares: the error type, output, the operator's name, the object graph."""

from __future__ import annotations

import argparse
import getpass
import json
import time
from collections.abc import Callable
from typing import Any

from idp.config import load_settings
from idp.services import Services, build_services, check_kek, ping_database
from idp.store.db import check_schema
from idp.users.directory import User

EXIT_USAGE = 2
Handler = Callable[[Services, argparse.Namespace], Any]


class CliError(Exception):
    """A refusal shown as one line on stderr, exit code 2."""


def out(args: argparse.Namespace, data: Any, text: str) -> None:
    """``data`` as indented JSON with ``--json``, else ``text``."""
    print(json.dumps(data, indent=2, default=str) if getattr(args, "json", False) else text)


def operator() -> str:
    """``cli:LOGIN`` for deny-list entries and session ends: who did it, as far as the OS knows."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name in minimal containers
        return "cli"


def fmt_time(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def leaf(group: Any, name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
    """A sub-command that runs ``handler(services, args)`` and takes ``--json``."""
    q: argparse.ArgumentParser = group.add_parser(name, help=help_)
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(handler=handler)
    return q


def services(*, check: bool = True) -> Services:
    """The object graph for one command: the database reachable, at this code's schema, the KEK matching."""
    c = build_services(load_settings())
    ping_database(c)
    if check:
        check_schema(c.engine)
        check_kek(c)
    return c


def user_named(c: Services, username: str) -> User:
    user = c.directory.store.by_username(username)
    if user is None:
        raise CliError(f"no user {username!r}")
    return user
