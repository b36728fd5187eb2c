"""Background upkeep for the token families: drop sealed grace copies and long-dead grants.

The sealed successor kept for the refresh grace window is also dropped as soon as
that successor is used; this sweep bounds how long an unused one survives
(window + ``PURGE_SECONDS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.concurrency import run_in_threadpool

from idp.container import Container

log = logging.getLogger("idp.oauth")
PURGE_SECONDS = 60.0


def install(c: Container) -> None:
    """Register start/stop hooks with the app's lifespan (``c.extras`` startup/shutdown hooks)."""
    task: asyncio.Task[None] | None = None

    async def sweep() -> None:
        while True:
            await asyncio.sleep(PURGE_SECONDS)
            try:
                await run_in_threadpool(c.grants.purge)
            except Exception:
                log.exception("grant purge failed; will retry")

    async def start() -> None:
        nonlocal task
        task = asyncio.create_task(sweep())

    async def stop() -> None:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    c.extras.setdefault("startup_hooks", []).append(start)
    c.extras.setdefault("shutdown_hooks", []).append(stop)
