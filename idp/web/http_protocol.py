"""uvicorn's httptools protocol, writing a response's head with its body in one ``write`` (``idp serve``'s default).

uvicorn writes the status line and headers when the app sends ``http.response.start`` and the
body when it sends ``http.response.body``: two ``send`` syscalls and two TCP segments for every
response, though nearly all of ours (JSON documents and tokens) are a few hundred bytes sent
back to back. Here the head is held until the body's first write and leaves with it. A head
whose body does not follow in the same event-loop step (a streamed response that waits for
data, a HEAD request) is written at the end of that step, so nothing waits on it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


class _OneWrite:
    """The transport as one request's cycle sees it: the response head waits for the body."""

    __slots__ = ("_cycle", "_head", "_head_seen", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, cycle: RequestResponseCycle, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._cycle = cycle
        self._loop = loop
        self._head: bytes | None = None
        self._head_seen = False

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + data)
        elif not self._head_seen and self._cycle.response_started:
            # The cycle's first write once the response has started is its head (a 100 Continue comes earlier).
            self._head_seen = True
            self._head = data
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        head = self._head
        if head is not None:
            self._head = None
            if not self._transport.is_closing():
                self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:  # anything else uvicorn may call goes to the real transport
        return getattr(self._transport, name)


class OneWriteProtocol(HttpToolsProtocol):
    """``uvicorn --http idp.web.http_protocol:OneWriteProtocol``: httptools, head and body in one write."""

    def on_headers_complete(self) -> None:
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not previous and self.cycle is not None:
            self.cycle.transport = _OneWrite(self.transport, self.cycle, self.loop)  # type: ignore[assignment]
