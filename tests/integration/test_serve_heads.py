"""`idp serve`'s default HTTP protocol bounds request heads, checked with raw sockets against a real server.

Size: a head over IDP_REQUEST_HEAD_MAX_BYTES (16 KiB) is answered 431 and its connection closed.
Time: a head not complete IDP_REQUEST_HEAD_TIMEOUT after its first byte (or after the connection
opened) loses its connection. The server here runs with a 2 s timeout; the wall-clock tests are
marked ``timing`` and allow a wide margin above it.
"""

from __future__ import annotations

import base64
import os
import secrets
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.live_server import free_port

HEAD_TIMEOUT = 2.0
MAX_HEAD = 16 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    data = tmp_path_factory.mktemp("serve-heads")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env |= {
        "IDP_ISSUER": "http://127.0.0.1:8000",
        "IDP_DATABASE_URL": f"sqlite:///{data / 'idp.sqlite3'}",
        "IDP_DATA_DIR": str(data),
        "IDP_KEK": base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode(),
        "IDP_DEMO": "false",
        "IDP_REQUEST_HEAD_TIMEOUT": str(HEAD_TIMEOUT),
    }
    cli = [sys.executable, "-m", "idp.cli"]
    subprocess.run([*cli, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=60)
    port = free_port()
    proc = subprocess.Popen(
        [*cli, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while not _healthy(port):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "idp serve exited"
            assert time.monotonic() < deadline, "idp serve did not start"
            time.sleep(0.1)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _healthy(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
            return read_all(s, 5).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def read_all(s: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes (or ``timeout`` passes)."""
    s.settimeout(timeout)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            return out
        out += chunk
    raise AssertionError(f"the server did not close the connection within {timeout} s; got {out[:80]!r}")


def head_of(size: int) -> bytes:
    start = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\nx-pad: "
    return start + b"p" * (size - len(start) - 4) + b"\r\n\r\n"


def test_a_head_at_the_bound_is_served(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=5) as s:
        s.sendall(head_of(MAX_HEAD))
        assert read_all(s, 10).startswith(b"HTTP/1.1 200 OK")


def test_a_longer_head_is_431_and_the_connection_closes(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-long: " + b"a" * MAX_HEAD)  # never ends
        answer = read_all(s, 10)
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"connection: close" in answer


def test_many_small_header_lines_are_bounded_too(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n" + b"x-a: b\r\n" * (MAX_HEAD // 8 + 1))
        assert read_all(s, 10).startswith(b"HTTP/1.1 431 ")


@pytest.mark.timing
def test_a_head_sent_a_line_at_a_time_is_cut_off(server: tuple[str, int]) -> None:
    """A slow-header client keeps adding lines: the connection still ends about HEAD_TIMEOUT after it began."""
    with socket.create_connection(server, timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 20:
            readable, _, _ = select.select([s], [], [], 0.25)
            if readable and s.recv(65536) == b"":
                closed = True
                break
            try:
                s.sendall(b"x-a: b\r\n")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
        elapsed = time.monotonic() - started
    assert closed, "a head trickled for 20 s and the server still waited"
    assert HEAD_TIMEOUT - 0.5 <= elapsed < HEAD_TIMEOUT + 8


@pytest.mark.timing
def test_a_connection_that_sends_nothing_is_closed(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=5) as s:
        started = time.monotonic()
        assert read_all(s, 20) == b""
        assert HEAD_TIMEOUT - 0.5 <= time.monotonic() - started < HEAD_TIMEOUT + 8


@pytest.mark.timing
def test_a_head_finished_within_the_timeout_is_served(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=5) as s:
        for piece in (b"GET /healthz HTTP/1.1\r\n", b"host: 127.0.0.1\r\n", b"connection: close\r\n\r\n"):
            s.sendall(piece)
            time.sleep(0.1)
        assert read_all(s, 10).startswith(b"HTTP/1.1 200 OK")


def test_the_bounds_reach_the_protocol_through_the_settings(tmp_path: Path) -> None:
    from idp.cli.serve import http_protocol
    from idp.config import load_settings
    from idp.web.http_protocol import OneWriteProtocol

    made = http_protocol("idp", load_settings(request_head_max_bytes=4096, request_head_timeout=3))
    assert made.func is OneWriteProtocol and made.keywords == {"max_head_bytes": 4096, "head_timeout": 3.0}
