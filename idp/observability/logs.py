"""JSON log lines: one object per line, with the request id of the request being served.

``configure_logging`` installs the formatter on the root logger. Access lines come
from the ``idp.access`` logger with their fields under ``extra={"fields": ...}``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import sys
import time
from logging.handlers import QueueHandler, QueueListener
from queue import Full, Queue
from typing import Any

import orjson

from idp.observability import context


class JsonFormatter(logging.Formatter):
    _cached: tuple[int, str] = (-1, "")  # (second, its text): one attribute, so threads never see half an update

    def _ts(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        cached = self._cached
        if cached[0] != second:  # one strftime per second, not per line
            cached = self._cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return f"{cached[1]}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self._ts(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or context.request_id()
        if rid:
            out["request_id"] = rid
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class _ContextQueueHandler(QueueHandler):
    """Hands records to the writer thread, carrying the request id (a contextvar the thread cannot see)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if getattr(record, "request_id", None) is None:
            record.request_id = context.request_id()
        return super().prepare(record)

    def enqueue(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Full):  # never block a request on logging; the line is dropped
            self.queue.put_nowait(record)


_listener: QueueListener | None = None


def configure_logging(level: str = "INFO", stream: Any = None) -> None:
    """Root logger -> one JSON object per line on stderr (or ``stream``).

    On stderr the write happens on a background thread (QueueHandler): formatting and a flushed write per
    request cost ~40 µs on the request path otherwise (bench/RESULTS.md). An explicit ``stream`` is
    written synchronously, so tests read what was logged as soon as the request returns.
    """
    global _listener
    handler: logging.Handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    if _listener is not None:
        _listener.stop()
        _listener = None
    if stream is None:
        queue: Queue[logging.LogRecord] = Queue(maxsize=100_000)
        _listener = QueueListener(queue, handler, respect_handler_level=False)
        _listener.start()
        atexit.register(_listener.stop)
        handler = _ContextQueueHandler(queue)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn's own access log would print raw paths and query strings (codes, id_token_hint): ours replaces it.
    logging.getLogger("uvicorn.access").disabled = True
