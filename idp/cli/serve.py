"""``idp serve``: the HTTP server (uvicorn), after the same start-up checks as every command."""

from __future__ import annotations

import argparse
import ctypes
import functools
import logging
import os
from typing import Any

from idp.cli.common import CliError, services
from idp.config import Settings, load_settings
from idp.observability import serve as observability_serve
from idp.observability.logs import configure_logging

# glibc's mallopt parameter (malloc.h); MALLOC_ARENA_MAX is the environment's name for it.
M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas for this process and the workers it spawns; False where that is not done.

    glibc hands each thread that allocates under contention an arena of its own, up to eight per core, and
    memory freed in one arena is not reused from another. A worker runs its blocking work on a pool of
    threads (anyio's, 40), so without a cap its RSS creeps up over a long run (bench/RESULTS.md, "RSS at
    the end"); two arenas cost no measurable throughput there. An operator's own ``MALLOC_ARENA_MAX`` wins.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    os.environ["MALLOC_ARENA_MAX"] = str(arenas)  # read by glibc when each spawned worker starts
    try:
        mallopt = ctypes.CDLL(None).mallopt  # this process: arenas made from now on
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to cap
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    limit_malloc_arenas()
    settings = load_settings()
    if args.workers > 1 and settings.embedded:
        raise CliError("--workers > 1 needs IDP_REDIS_URL: the in-process store is not shared between workers")
    # Before anything imports prometheus-client: workers share metrics through files (idp.observability.serve).
    observability_serve.prepare(args.workers, settings.metrics_port)
    c = services()
    warning = proxy_warning(settings)
    if warning:
        configure_logging(settings.log_level)  # once, in the process that starts the workers
        logging.getLogger("idp").warning(warning)
    if settings.metrics_port:
        # The supervisor's services stay open: their state gauges read the keyring and the database per scrape.
        observability_serve.serve_metrics(c.metrics, host=settings.metrics_host, port=settings.metrics_port)
    else:
        c.close()
    uvicorn.run(
        "idp.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        access_log=False,  # ours (idp.observability) replaces it; uvicorn would still format its arguments per request
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
        timeout_graceful_shutdown=20,
        http=http_protocol(args.http, settings),
        h11_max_incomplete_event_size=settings.request_head_max_bytes,  # h11's own head bound, the same size
    )
    return 0


def proxy_warning(settings: Settings) -> str | None:
    """The start-up warning for an https issuer with no trusted proxies, or None.

    Without ``IDP_TRUSTED_PROXIES`` the client address is the TCP peer. Behind a TLS proxy that is the proxy,
    so every person shares one address for the per-address limits (parked sign-ins, login throttling): one
    client filling its allowance refuses everyone. A server terminating TLS itself is right to leave it
    empty, hence a warning, not a refusal."""
    if not settings.issuer.startswith("https://") or settings.trusted_proxies.strip():
        return None
    return (
        "IDP_TRUSTED_PROXIES is empty with an https issuer: if a TLS proxy forwards to idp, every client has "
        "the proxy's address and the per-address limits (sign-ins waiting, login throttle) are shared by all; "
        "set it to the proxy's address (docs/operations.md)"
    )


HTTP_CHOICES = ("idp", "httptools", "h11")


def http_protocol(choice: str, settings: Settings) -> Any:
    """uvicorn's ``http`` setting: ``idp`` is uvicorn's httptools protocol writing each response in one
    ``write``, with request heads bounded in size and time (:mod:`idp.web.http_protocol`); without
    httptools installed, uvicorn's own choice. A partial of a module-level class: workers unpickle it."""
    if choice != "idp":
        return choice
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "auto"
    from idp.web.http_protocol import OneWriteProtocol

    return functools.partial(
        OneWriteProtocol,
        max_head_bytes=settings.request_head_max_bytes,
        head_timeout=settings.request_head_timeout,
    )


def register(sub: Any) -> None:
    s = sub.add_parser("serve", help="run the HTTP server (uvicorn)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1)
    s.add_argument(
        "--http",
        choices=HTTP_CHOICES,
        default="idp",
        help="HTTP/1.1 implementation: idp (default; uvicorn's httptools, one write per response), httptools, h11",
    )
    s.set_defaults(run=cmd_serve)
