"""JSON log lines: one object per line, with the request id of the request being served.

``configure_logging`` installs the formatter on the root logger. Access lines come
from the ``idp.access`` logger with their fields under ``extra={"fields": ...}``.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
from collections import deque
from typing import IO, Any

import orjson

from idp.observability import context


class JsonFormatter(logging.Formatter):
    _cached: tuple[int, str] = (-1, "")  # (second, its text): one attribute, so threads never see half an update

    def _ts(self, created: float) -> str:
        second = int(created)
        cached = self._cached
        if cached[0] != second:  # one strftime per second, not per line
            cached = self._cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return f"{cached[1]}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None) or context.request_id()
        fields = getattr(record, "fields", None)
        exc = self.formatException(record.exc_info) if record.exc_info else None
        return self.line(
            record.created, record.levelname, record.name, record.getMessage(), rid,
            fields if isinstance(fields, dict) else None, exc,
        )  # fmt: skip

    def line(
        self,
        created: float,
        level: str,
        logger: str,
        msg: str,
        request_id: str | None,
        fields: dict[str, Any] | None,
        exc: str | None = None,
    ) -> str:
        out: dict[str, Any] = {"ts": self._ts(created), "level": level.lower(), "logger": logger, "msg": msg}
        if request_id:
            out["request_id"] = request_id
        if fields:
            out.update(fields)
        if exc:
            out["exc"] = exc
        return orjson.dumps(out, default=str).decode()


class BatchHandler(logging.Handler):
    """Hands records to a writer thread that formats and writes them in batches.

    The request path only appends to a deque: no lock hand-off, no thread wake-up and no write per
    line (a ``QueueHandler`` paid a ``Condition.notify`` and the writer a flushed ``write`` for every
    record). The writer wakes every ``interval`` seconds, formats what arrived and writes it in one
    call. When ``max_pending`` records wait, new ones are dropped: logging never blocks a request.
    """

    def __init__(
        self, target: logging.StreamHandler[Any], *, interval: float = 0.05, max_pending: int = 100_000
    ) -> None:
        super().__init__()
        self.target = target
        self.interval = interval
        self.max_pending = max_pending
        self.dropped = 0  # records refused since the last batch; the writer reports them
        self._pending: deque[logging.LogRecord] = deque()
        self._writing = threading.Lock()  # one batch at a time, so lines keep their order
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="idp-log-writer", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        if len(self._pending) >= self.max_pending:
            self.dropped += 1
            return
        if getattr(record, "request_id", None) is None:  # a contextvar: the writer thread cannot see it
            record.request_id = context.request_id()
        if record.args:  # freeze the message now: its arguments may change once the caller moves on
            record.msg, record.args = record.getMessage(), None
        self._pending.append(record)

    def info_line(self, logger: str, msg: str, request_id: str, fields: dict[str, Any]) -> None:
        """An INFO line without a LogRecord (the access line of every request): the same JSON, without
        building a LogRecord and handing it through ``logging`` on the request path (bench/design.md)."""
        if len(self._pending) >= self.max_pending:
            self.dropped += 1
            return
        self._pending.append((time.time(), logger, msg, request_id, fields))  # type: ignore[arg-type]

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()
        self.flush()

    def flush(self) -> None:
        """Format and write every pending record (the writer thread calls it; so do ``close`` and shutdown)."""
        with self._writing:
            lines = self._format_pending()
            if not lines:
                return
            self.target.acquire()
            try:
                self.target.stream.write("\n".join(lines) + "\n")
                self.target.stream.flush()
            except Exception:
                self.handleError(logging.makeLogRecord({"msg": "log write failed"}))
            finally:
                self.target.release()

    def _format_pending(self) -> list[str]:
        pending, lines = self._pending, []
        if self.dropped:
            dropped, self.dropped = self.dropped, 0
            warning = {"name": "idp.logs", "levelno": logging.WARNING, "levelname": "WARNING"}
            warning["msg"] = f"{dropped} log records dropped: the log stream is not keeping up"
            lines.append(self.target.format(logging.makeLogRecord(warning)))
        formatter = self.target.formatter
        while pending:
            record = pending.popleft()
            try:
                if isinstance(record, tuple):  # info_line's (batched_for offers it only with a JsonFormatter)
                    created, logger, msg, rid, fields = record
                    lines.append(formatter.line(created, "INFO", logger, msg, rid, fields))  # type: ignore[union-attr]
                else:
                    lines.append(self.target.format(record))
            except Exception:
                self.handleError(record if isinstance(record, logging.LogRecord) else logging.makeLogRecord({}))
        return lines

    def close(self) -> None:
        """Stop the writer after it has written everything pending (atexit, reconfiguration)."""
        if not self._stop.is_set():
            self._stop.set()
            if self._thread is not threading.current_thread():
                self._thread.join(timeout=5)
        self.flush()
        super().close()


_batch: BatchHandler | None = None


def batched_for(log: logging.Logger) -> BatchHandler | None:
    """The batch writer, when it is where ``log``'s INFO lines go and nothing else would see them.

    Checked per call (cheap): a handler added later (a test's log capture, an operator's extra
    handler) takes the records the ordinary way again."""
    batch = _batch
    if batch is None or not isinstance(batch.target.formatter, JsonFormatter):
        return None
    if log.handlers or not log.propagate or log.disabled or not log.isEnabledFor(logging.INFO):
        return None
    parent = log.parent
    while parent is not None and parent.parent is not None:  # idp.access -> idp -> root
        if parent.handlers or not parent.propagate:
            return None
        parent = parent.parent
    return batch if parent is not None and parent.handlers == [batch] else None


def configure_logging(level: str = "INFO", stream: IO[str] | None = None) -> None:
    """Root logger -> one JSON object per line on stderr (or ``stream``).

    On stderr, lines are formatted and written in batches on a background thread (:class:`BatchHandler`):
    neither a flushed write per line on the request path nor a per-record hand-off to a writer
    thread (``QueueHandler``: a wake-up and a write per line); bench/design.md has the figures. An
    explicit ``stream`` is written synchronously, so tests read what was logged as soon as the
    request returns.
    """
    global _batch
    stream_handler: logging.StreamHandler[Any] = logging.StreamHandler(stream or sys.stderr)
    stream_handler.setFormatter(JsonFormatter())
    handler: logging.Handler = stream_handler
    if _batch is not None:
        _batch.close()
        _batch = None
    if stream is None:
        handler = _batch = BatchHandler(stream_handler)
        atexit.register(handler.close)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # The JSON lines carry no thread or process fields: skip looking them up (an os.getpid() syscall) per record.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    # uvicorn's own access log would print raw paths and query strings (codes, id_token_hint): ours replaces it.
    logging.getLogger("uvicorn.access").disabled = True
