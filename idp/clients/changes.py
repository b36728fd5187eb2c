"""Per-process follower of client changes announced by other workers (see :mod:`idp.clients.registry`).

Each message names a client: drop this process's cached copy, then count an acknowledgement
on the message's key, for which the writer waits before its call returns. The cache drop is
on the event loop (no I/O), before anything else the loop runs next; the acknowledgement
goes to a thread (a Redis command). A subscription that ends (the store closed, or Redis
lost) clears the whole cache when it resumes: messages sent meanwhile are lost.
"""

from __future__ import annotations

import asyncio
import logging

from anyio import to_thread

from idp.clients.registry import CHANNEL, ClientRegistry, parse_change
from idp.ephemeral import EphemeralStore
from idp.pubsub import follow_channel, stop_subscriber

log = logging.getLogger("idp.clients")

ACK_WINDOW = 60.0


class ClientChanges:
    def __init__(self, registry: ClientRegistry, ephemeral: EphemeralStore) -> None:
        self._registry = registry
        self._ephemeral = ephemeral
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        self._stopping = False
        self._registry.follower_loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        self._stopping = True
        self._registry.follower_loop = None
        task, self._task = self._task, None
        if task is None:
            return
        await stop_subscriber(task, self._ephemeral, CHANNEL, "clients")

    async def _follow(self) -> None:
        await follow_channel(self._ephemeral, CHANNEL, self._apply, self._forget_all, lambda: self._stopping, "clients")

    async def _apply(self, message: bytes) -> None:
        change = parse_change(message)
        if change is None:
            return
        client_id, ack = change
        self._registry.invalidate(client_id)
        try:
            await to_thread.run_sync(self._ephemeral.incr, ack, ACK_WINDOW)
        except Exception as exc:  # the writer stops waiting after its timeout
            log.warning("clients: cannot acknowledge a change (%s)", type(exc).__name__)

    async def _forget_all(self) -> None:
        self._registry.invalidate_all()  # whatever was announced meanwhile is lost: forget everything
