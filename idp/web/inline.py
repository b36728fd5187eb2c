"""Inline first, threadpool on a cache miss (see :mod:`idp.nonblocking`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool

from idp import nonblocking

P = ParamSpec("P")
R = TypeVar("R")


async def run_cached(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``fn(*args)`` on the event loop if it needs no I/O, else in the threadpool (from the start again)."""
    try:
        with nonblocking.inline():
            return fn(*args, **kwargs)
    except nonblocking.WouldBlock:
        pass
    return await run_in_threadpool(fn, *args, **kwargs)
