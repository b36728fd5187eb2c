"""Following a pub/sub channel of the ephemeral store, and stopping the follower reliably."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from anyio import to_thread

from idp.ephemeral import EphemeralStore

log = logging.getLogger("idp")

WAKE = b""
"""An empty message: subscribers ignore it; it only makes a blocked read return."""


async def stop_subscriber(task: asyncio.Task[None], ephemeral: EphemeralStore, channel: str, what: str) -> None:
    """Cancel the subscriber, and if that does not end it, wake it with a message: on Python 3.11 a cancel
    that lands while redis-py's ``wait_for`` completes a read is lost, and the task would never end."""
    for step, wait in (("cancel", 0.2), ("wake", 0.5), ("wake", 1.0)):
        if step == "cancel":
            task.cancel()
        else:
            with contextlib.suppress(Exception):
                await to_thread.run_sync(ephemeral.publish, channel, WAKE)
        done, _ = await asyncio.wait([task], timeout=wait)
        if done:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                task.result()
            return
    log.warning("%s: the pub/sub subscriber did not stop", what)


async def follow_channel(
    ephemeral: EphemeralStore,
    channel: str,
    handle: Callable[[bytes], Awaitable[None]],
    resync: Callable[[], Awaitable[None]],
    stopping: Callable[[], bool],
    what: str,
) -> None:
    """Hand every message on ``channel`` but the wake-up to ``handle`` until ``stopping()``; when the
    subscription ends (the store closed, a network fault, a slow reader), resubscribe and call ``resync``:
    whatever was published meanwhile was lost."""
    while not stopping():
        try:
            async with contextlib.aclosing(ephemeral.subscribe(channel)) as messages:
                async for message in messages:
                    if stopping():
                        return
                    if message != WAKE:
                        await handle(message)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: subscription failed; resubscribing", what)
        await asyncio.sleep(0.2)
        await resync()
