"""Run cheap request work on the event loop when every cache it reads is warm.

Introspection and userinfo are a signature check plus lookups that are almost always
cached (clients, users, the deny-list snapshot, the keyring). Sending them to the
threadpool costs more CPU than the work itself (a thread hand-off per request), but
running them inline would block the event loop whenever a cache is cold. So the caller
first tries inline with :func:`inline` set; the I/O layers call :func:`check` before
any round trip (idp.store.db on every SQL statement, idp.store.redis_store on every
command), which raises :class:`WouldBlock` there, and the caller runs the work again in
the threadpool. Work run this way must be safe to repeat: reads, and caches filling.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

from anyio import to_thread

P = ParamSpec("P")
R = TypeVar("R")

_INLINE: ContextVar[bool] = ContextVar("idp_inline", default=False)


class WouldBlock(BaseException):  # a signal, like GeneratorExit, not an error
    """Raised by an I/O layer instead of blocking the event loop; the caller retries in a thread.

    A BaseException so that ``except Exception`` fallbacks on the way (e.g. "keep the last snapshot
    when SQL fails") let it through instead of treating a cold cache as an outage.
    """


def check() -> None:
    if _INLINE.get():
        raise WouldBlock


@contextmanager
def inline() -> Iterator[None]:
    token = _INLINE.set(True)
    try:
        yield
    finally:
        _INLINE.reset(token)


async def run_cached(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``fn(*args)`` on the event loop if it needs no I/O, else in the threadpool (from the start again)."""
    try:
        with inline():
            return fn(*args, **kwargs)
    except WouldBlock:
        pass
    return await to_thread.run_sync(functools.partial(fn, *args, **kwargs))
