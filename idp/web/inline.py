"""Inline first, threadpool on a cache miss: :func:`idp.nonblocking.run_cached`, for the HTTP modules."""

from __future__ import annotations

from idp.nonblocking import run_cached as run_cached
