"""idp.web.http_protocol: a small response leaves in one write; nothing is delayed past the event-loop step;
request heads are bounded in size (431) before the parser holds more than the bound.

The head timeout runs on the event loop's clock: tests/integration/test_serve_heads.py checks it
against a real `idp serve` with raw sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from idp.web.http_protocol import MAX_HEAD_BYTES, OneWriteProtocol


class Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 5000)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await asyncio.sleep(0.05)  # a stream waiting for data: its head must not wait with it
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        await send({"type": "http.response.body", "body": b"two"})
        return
    payload = b'{"ok":true,"got":' + str(len(body)).encode() + b"}"
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class CountingParser:
    """The protocol's parser, counting what it is fed."""

    def __init__(self, parser: Any) -> None:
        self.parser = parser
        self.fed = 0

    def feed_data(self, data: bytes) -> None:
        self.fed += len(data)
        self.parser.feed_data(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.parser, name)


PARSERS: list[CountingParser] = []


async def serve(
    raw: bytes, responses: int = 1, *, settle: float = 0.0, chunk: int = 0
) -> tuple[Transport, list[float]]:
    """Feed ``raw`` (in ``chunk``-byte pieces if set) to a protocol; returns the writes and their times."""
    config = Config(app, http=OneWriteProtocol, lifespan="off", log_level="warning", access_log=False)
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()
    protocol = OneWriteProtocol(config=config, server_state=state, app_state={}, _loop=loop)
    protocol.parser = CountingParser(protocol.parser)  # type: ignore[assignment]
    PARSERS.append(protocol.parser)  # type: ignore[arg-type]
    transport = Transport()
    stamps: list[float] = []
    write = transport.write

    def stamped(data: bytes) -> None:
        stamps.append(loop.time())
        write(data)

    transport.write = stamped  # type: ignore[method-assign]
    protocol.connection_made(transport)  # type: ignore[arg-type]
    start = loop.time()
    for at in range(0, len(raw), chunk or len(raw) or 1):
        protocol.data_received(raw[at : at + (chunk or len(raw))])
        if transport.closed:
            break
    for _ in range(2000):
        if state.total_requests >= responses:
            break
        await asyncio.sleep(0.001)
    await asyncio.sleep(settle)
    assert state.total_requests == responses
    return transport, [t - start for t in stamps]


async def test_a_small_response_is_one_write_of_head_and_body() -> None:
    transport, _ = await serve(b"GET /x HTTP/1.1\r\nhost: a\r\n\r\n")
    (only,) = transport.writes
    head, body = only.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 19" in head
    assert body == b'{"ok":true,"got":0}'


async def test_pipelined_requests_answer_in_order() -> None:
    raw = b"GET /a HTTP/1.1\r\nhost: a\r\n\r\nPOST /b HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nhello"
    transport, _ = await serve(raw, responses=2)
    assert len(transport.writes) == 2
    assert transport.writes[0].endswith(b'"got":0}') and transport.writes[1].endswith(b'"got":5}')


@pytest.mark.timing  # write times on the event loop's clock
async def test_a_streamed_head_leaves_at_once_not_with_the_first_chunk() -> None:
    transport, stamps = await serve(b"GET /stream HTTP/1.1\r\nhost: a\r\n\r\n", settle=0.01)
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK") and transport.writes[0].endswith(b"\r\n\r\n")
    assert stamps[0] < 0.04 < stamps[1]  # the head did not wait for the 50 ms pause
    assert b"".join(transport.writes).endswith(b"3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n")


async def test_head_request_gets_its_head() -> None:
    transport, _ = await serve(b"HEAD /x HTTP/1.1\r\nhost: a\r\n\r\n", settle=0.01)
    (only,) = transport.writes
    assert only.startswith(b"HTTP/1.1 200 OK") and only.endswith(b"\r\n\r\n")


async def test_100_continue_is_sent_before_the_body_is_read() -> None:
    raw = b"POST /x HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\nabc"
    transport, _ = await serve(raw)
    assert transport.writes[0] == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert transport.writes[1].startswith(b"HTTP/1.1 200 OK") and transport.writes[1].endswith(b'"got":3}')


async def test_connection_close_writes_the_response_before_closing() -> None:
    transport, _ = await serve(b"HEAD /x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n", settle=0.01)
    assert transport.closed
    assert transport.writes and transport.writes[0].startswith(b"HTTP/1.1 200 OK")


def head_of(size: int, path: str = "/x") -> bytes:
    """A GET whose head (request line to the blank line) is exactly ``size`` bytes."""
    start = f"GET {path} HTTP/1.1\r\nhost: a\r\nx-pad: ".encode()
    pad = size - len(start) - 4
    return start + b"p" * pad + b"\r\n\r\n"


TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large\r\n"


@pytest.mark.parametrize("chunk", [0, 1000, 4096])
async def test_a_head_of_exactly_the_bound_is_served(chunk: int) -> None:
    raw = head_of(MAX_HEAD_BYTES)
    assert len(raw) == 16 * 1024
    transport, _ = await serve(raw, chunk=chunk)
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK") and not transport.closed


@pytest.mark.parametrize("chunk", [0, 1000, 4096])
async def test_one_byte_more_is_431_and_the_connection_closes(chunk: int) -> None:
    transport, _ = await serve(head_of(MAX_HEAD_BYTES + 1), responses=0, settle=0.01, chunk=chunk)
    assert transport.closed
    assert b"".join(transport.writes).startswith(TOO_LARGE)  # the app never saw it
    assert PARSERS[-1].fed <= MAX_HEAD_BYTES


async def test_an_endless_header_line_is_refused_before_the_parser_holds_more_than_the_bound() -> None:
    raw = b"GET / HTTP/1.1\r\nx-long: " + b"a" * (4 * 1024 * 1024)  # never ends: 4 MiB in 64 KiB reads
    transport, _ = await serve(raw, responses=0, settle=0.01, chunk=64 * 1024)
    assert transport.closed and b"".join(transport.writes).startswith(TOO_LARGE)
    assert PARSERS[-1].fed == MAX_HEAD_BYTES


async def test_many_small_headers_count_too() -> None:
    raw = b"GET / HTTP/1.1\r\n" + b"x-a: b\r\n" * 4000 + b"\r\n"  # 32 KiB of 8-byte lines
    transport, _ = await serve(raw, responses=0, settle=0.01, chunk=512)
    assert transport.closed and b"".join(transport.writes).startswith(TOO_LARGE)


async def test_a_body_is_not_counted_as_head() -> None:
    body = b"b" * 60_000
    raw = b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 60000\r\n\r\n" + body
    for chunk in (0, 8192):
        transport, _ = await serve(raw, chunk=chunk)
        assert transport.writes[-1].endswith(b'"got":60000}') and not transport.closed


async def test_pipelined_heads_are_bounded_each() -> None:
    raw = head_of(MAX_HEAD_BYTES - 100, "/a") + head_of(MAX_HEAD_BYTES - 100, "/b")
    transport, _ = await serve(raw, responses=2)
    assert len(transport.writes) == 2 and not transport.closed


async def test_the_bound_is_a_parameter() -> None:
    config = Config(app, http=OneWriteProtocol, lifespan="off", log_level="warning", access_log=False)
    config.load()
    loop = asyncio.get_running_loop()
    protocol = OneWriteProtocol(
        config=config, server_state=ServerState(), app_state={}, _loop=loop, max_head_bytes=2048
    )
    transport = Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(head_of(2049))
    assert transport.closed and transport.writes[0].startswith(TOO_LARGE)
