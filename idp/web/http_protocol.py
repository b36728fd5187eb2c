"""uvicorn's httptools protocol, writing a response's head with its body in one ``write`` (``idp serve``'s default).

uvicorn writes the status line and headers when the app sends ``http.response.start`` and the
body when it sends ``http.response.body``: two ``send`` syscalls and two TCP segments for every
response, though nearly all of ours (JSON documents and tokens) are a few hundred bytes sent
back to back. Here the head is held until the body's first write and leaves with it. A head
whose body does not follow in the same event-loop step (a streamed response that waits for
data, a HEAD request) is written at the end of that step, so nothing waits on it.

Request heads are bounded, which httptools alone does not do (it would hold a header line of any
length, and uvicorn times out only idle keep-alive connections): a head may take at most
``max_head_bytes`` from its first byte to the end of its blank line, else 431 and the connection is
closed; and it must be complete ``head_timeout`` seconds after its first byte (or after the
connection opened, for the first), else the connection is closed. The parser is never fed more of
an unfinished head than the bound, so that is all it can hold.
"""

from __future__ import annotations

import asyncio
from asyncio import TimerHandle
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


MAX_HEAD_BYTES = 16 * 1024  # like uvicorn's h11 default (h11_max_incomplete_event_size)
HEAD_TIMEOUT = 10.0
_TERMINATOR = b"\r\n\r\n"
_TOO_LARGE_BODY = b"Request header fields too large."
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"  # RFC 6585 §5
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TOO_LARGE_BODY), _TOO_LARGE_BODY)
)


class OneWriteProtocol(HttpToolsProtocol):
    """``uvicorn --http idp.web.http_protocol:OneWriteProtocol``: httptools, head and body in one write,
    request heads bounded in size and time (``functools.partial`` sets the bounds; ``idp serve`` does)."""

    def __init__(
        self, *args: Any, max_head_bytes: int = MAX_HEAD_BYTES, head_timeout: float = HEAD_TIMEOUT, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_head_bytes = max_head_bytes
        self.head_timeout = head_timeout
        self._head_open = True  # bytes arriving now belong to an unfinished head
        self._head_began = False  # a head began during the current feed
        self._head_bytes = 0
        self._head_timer: TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        while data and not self.transport.is_closing():
            if self._head_open:  # never give the parser more of an unfinished head than the bound
                room = self.max_head_bytes - self._head_bytes
                piece, data = data[:room], data[room:]
            else:
                piece, data = data, b""
            self._head_began = False
            super().data_received(piece)
            if not self._head_open or self.transport.is_closing():
                continue
            if self._head_began:  # it began inside this piece: at most what follows the last blank line
                end = piece.rfind(_TERMINATOR)
                self._head_bytes = len(piece) - (end + len(_TERMINATOR) if end >= 0 else 0)
            else:
                self._head_bytes += len(piece)
            if self._head_bytes >= self.max_head_bytes:
                self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = self._head_began = True
        self._head_bytes = 0
        self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._cancel_head_timer()
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not previous and self.cycle is not None:
            self.cycle.transport = _OneWrite(self.transport, self.cycle, self.loop)  # type: ignore[assignment]

    def _refuse_head(self) -> None:
        """431 unless a response is still being written on this connection (then only the close)."""
        self._cancel_head_timer()
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(_TOO_LARGE)
        self.transport.close()

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_expired)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self._head_open and not self.transport.is_closing():
            self.transport.close()
