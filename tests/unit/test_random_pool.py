"""The pooled CSPRNG behind request ids and jti: each byte once, never shared across threads or a fork."""

from __future__ import annotations

import os
import re
import threading

from idp import crypto
from idp.crypto import RandomPool


def test_slices_are_fresh_and_refill_across_the_buffer_end() -> None:
    pool = RandomPool(size=64)
    seen = [pool.take(9) for _ in range(40)]  # 360 bytes: several refills of 64
    assert all(len(s) == 9 for s in seen)
    assert len(set(seen)) == len(seen)
    assert len(pool.take(100)) == 100  # more than a buffer: read directly


def test_threads_never_get_the_same_slice() -> None:
    pool = RandomPool(size=256)
    out: list[bytes] = []
    lock = threading.Lock()

    def work() -> None:
        mine = [pool.take(16) for _ in range(2000)]
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 16_000 and len(set(out)) == len(out)


def test_a_forked_child_does_not_repeat_the_parents_bytes() -> None:
    crypto.random_hex(1)  # the module pool now holds bytes the parent has not handed out yet
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.write(write, crypto.random_hex(16).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert child != crypto.random_hex(16)


def test_identifier_shapes() -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", crypto.random_hex(16))
    assert re.fullmatch(r"[A-Za-z0-9_-]{12}", crypto.random_urlsafe(9))
