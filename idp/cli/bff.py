"""``idp bff serve``: the backend-for-frontend (:mod:`idp.bff`) on uvicorn, configured by ``IDP_BFF_*``.

idp bff serve [--upstream PREFIX=URL[;exchange=AUDIENCE] ...] [--static DIR] [--host H] [--port P]

``--upstream`` options replace ``IDP_BFF_UPSTREAMS`` when given; ``--static`` serves the SPA's files at ``/``.
One process: the in-process store (``memory://``) is not shared, so several workers need SQL or Redis and a
process manager of their own.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from idp.cli.common import CliError


def build_app(args: argparse.Namespace) -> Any:
    """The BFF app the arguments and the environment describe; CliError for a bad setting. The BFF is
    imported here, not with the CLI: ``idp serve`` and its workers never load it."""
    from idp.bff.app import create_bff_app
    from idp.bff.config import BffConfigError, load_bff_settings, parse_upstream

    overrides: dict[str, Any] = {}
    try:
        if args.upstream:
            overrides["upstreams"] = tuple(parse_upstream(spec) for spec in args.upstream)
        settings = load_bff_settings(**overrides)
    except BffConfigError as exc:
        raise CliError(str(exc)) from None
    if not settings.client_id or not settings.client_secret:
        raise CliError("IDP_BFF_CLIENT_ID and IDP_BFF_CLIENT_SECRET are required (a confidential web client)")
    static: Path | None = args.static
    if static is not None and not static.is_dir():
        raise CliError(f"--static {static}: not a directory")
    return create_bff_app(settings, static_dir=static)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    uvicorn.run(build_app(args), host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=10)
    return 0


def register(sub: Any) -> None:
    group = sub.add_parser("bff", help="the backend-for-frontend").add_subparsers(dest="bff_command", required=True)
    s = group.add_parser("serve", help="run the BFF (uvicorn)")
    s.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="PREFIX=URL[;exchange=AUDIENCE]",
        help="an API to proxy, e.g. /api=http://127.0.0.1:9001 (repeatable; see docs/bff.md)",
    )
    s.add_argument("--static", type=Path, default=None, metavar="DIR", help="serve the SPA's files from DIR")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.set_defaults(run=cmd_serve)
