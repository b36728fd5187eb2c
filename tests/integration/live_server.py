"""Run an ASGI app under uvicorn on a free loopback port in a background thread (bounded waits)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    def __init__(self, app: Any, port: int | None = None, *, before_stop: Any = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._before_stop = before_stop  # sync callable run on the server loop first (end open streams)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, timeout: float = 10.0) -> LiveServer:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, lifespan="on", log_level="warning",
            loop="asyncio", http="h11", timeout_graceful_shutdown=2,
        )  # fmt: skip
        self._server = uvicorn.Server(config)

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._server.serve())  # type: ignore[union-attr]
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, daemon=True, name=f"uvicorn-{self.port}")
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is None or self._thread is None:
            return
        if self._before_stop is not None and self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._before_stop)
        self._server.should_exit = True
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "uvicorn did not stop"
        self._server = self._thread = None

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    async def astart(self) -> LiveServer:
        return await asyncio.to_thread(self.start)
