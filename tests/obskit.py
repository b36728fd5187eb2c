"""Helpers for observability tests: capture JSON log lines, read Prometheus samples."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from idp.observability.logs import JsonFormatter

TEST_SIDE = ("httpx", "httpcore", "asyncio")


class LogCapture:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def access(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["logger"] == "idp.access"]


@contextmanager
def capture_logs(level: int = logging.DEBUG) -> Iterator[LogCapture]:
    """Every record of every logger, formatted exactly as production formats it (one JSON object per line)."""
    cap = LogCapture()
    handler = logging.StreamHandler(cap.stream)
    handler.setFormatter(JsonFormatter())
    # The test's own HTTP client logs the URLs it requests; that is not the server's log.
    handler.addFilter(lambda record: not record.name.startswith(TEST_SIDE))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield cap
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` whose labels include ``labels`` (summed when several match)."""
    total, found = 0.0, False
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
                found = True
    return total if found else None
