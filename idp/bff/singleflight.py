"""One task per key for concurrent callers: the in-process half of "refresh once, for everyone".

The task runs shielded from its callers: a caller that is cancelled (a browser that went away) stops
waiting, but the work goes on, because what it writes (tokens idp has already rotated, a minted token)
must not be lost halfway. A failure reaches every caller that waits for it and is not reported again
as "never retrieved" once they have gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """``await flight.run(key, work)``: ``work()`` is started unless a task for ``key`` is under way, and
    every caller gets that task's result or exception. ``on_result(key, value)`` runs once per successful
    task, before its callers resume (e.g. to fill a cache)."""

    def __init__(self, on_result: Callable[[K, V], None] | None = None) -> None:
        self._inflight: dict[K, asyncio.Task[V]] = {}
        self._on_result = on_result

    def __contains__(self, key: K) -> bool:
        return key in self._inflight

    def __len__(self) -> int:
        return len(self._inflight)

    async def run(self, key: K, work: Callable[[], Coroutine[Any, Any, V]]) -> V:
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(work())
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._settle(key, done))
        return await asyncio.shield(task)

    def _settle(self, key: K, task: asyncio.Task[V]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if task.cancelled() or task.exception() is not None:  # retrieved: its callers have seen it
            return
        if self._on_result is not None:
            self._on_result(key, task.result())
