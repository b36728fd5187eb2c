"""Lifespan tasks: async context managers a feature's ``tasks`` entry returns, entered at startup and
exited at shutdown (:func:`idp.app.create_app`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.concurrency import run_in_threadpool

log = logging.getLogger("idp")


@contextlib.asynccontextmanager
async def every(seconds: float, fn: Callable[[], object], *, name: str) -> AsyncIterator[None]:
    """Run the blocking ``fn`` in the threadpool every ``seconds`` (first after one period) while the block
    runs; a failure is logged and retried at the next tick, never raised."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await run_in_threadpool(fn)
            except Exception:
                log.exception("%s failed; will retry", name)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def started(start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    """A service with ``start()``/``stop()`` coroutines as a lifespan task."""
    await start()
    try:
        yield
    finally:
        await stop()
