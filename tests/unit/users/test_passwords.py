"""Argon2id verification in reused work areas: same answers as argon2-cffi, no page faults, memory given back."""

from __future__ import annotations

import resource
import sys
import threading
import time

import pytest
from argon2 import PasswordHasher, Type
from argon2.low_level import hash_secret

from idp.users.passwords import Passwords, WorkAreas

SMALL = {"time_cost": 2, "memory_kib": 256, "parallelism": 1}


def library_says(encoded: str, password: str) -> bool:
    try:
        return PasswordHasher().verify(encoded, password)
    except Exception:
        return False


def encoded(password: str, *, t: int = 2, m: int = 256, p: int = 1, type: Type = Type.ID, version: int = 19,
            salt: bytes = b"saltsaltsalt1234", hash_len: int = 32) -> str:  # fmt: skip
    return hash_secret(password.encode(), salt, t, m, p, hash_len, type, version).decode()


@pytest.fixture
def pw() -> Passwords:
    return Passwords(**SMALL)


def test_own_hashes_verify_in_a_work_area(pw):
    stored = pw.hash("correct horse")
    assert pw.verify(stored, "correct horse") is True
    assert pw._areas.resident() == 1  # the fast path ran (the library path never touches an area)
    assert pw.verify(stored, "correct horsf") is False
    assert pw.verify(stored, "") is False


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"t": 3},
        {"m": 128},  # less memory than configured: fits in the area
        {"m": 1024},  # more than configured: argon2-cffi allocates
        {"p": 2, "m": 256},
        {"salt": b"8bytes!!", "hash_len": 16},
        {"hash_len": 64},
        {"type": Type.I},
        {"type": Type.D},
        {"version": 16},
    ],
)
def test_answers_are_argon2_cffis(pw, kw):
    stored = encoded("s3cret pass", **kw)
    for attempt in ("s3cret pass", "s3cret pasS", "", "s3cret pass "):
        assert pw.verify(stored, attempt) is library_says(stored, attempt), (kw, attempt)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda h: h[:-1],  # hash one character short
        lambda h: h[:-1] + ("B" if h[-1] != "B" else "C"),  # non-canonical trailing bits / other hash
        lambda h: h.replace("$v=19", ""),
        lambda h: h.replace("m=256", "m=0256"),
        lambda h: h.replace("argon2id", "argon2x"),
        lambda h: h + "=",
        lambda h: "",
        lambda h: "$argon2id$v=19$m=256,t=2,p=1$$",
        lambda h: h.replace("t=2", "t=0"),
    ],
)
def test_malformed_or_odd_hashes_answer_like_the_library(pw, mangle):
    stored = mangle(encoded("s3cret pass"))
    assert pw.verify(stored, "s3cret pass") is library_says(stored, "s3cret pass")


def test_unknown_user_costs_one_verification_and_no_hash(pw, monkeypatch):
    """One Argon2id run at the configured parameters, like a known user; no hash made on first use."""
    calls, hashes = [], []
    original = pw._verify_in
    monkeypatch.setattr(pw, "_verify_in", lambda *a: calls.append(a[1]) or original(*a))
    monkeypatch.setattr(pw, "hash", lambda *a: hashes.append(1))
    monkeypatch.setattr(PasswordHasher, "hash", lambda *a, **kw: hashes.append(1))
    assert pw.verify(None, "anything at all") is False
    assert pw.verify(None, "dummy password for unknown users") is False
    assert len(calls) == 2 and hashes == []
    assert not pw.needs_rehash(calls[0])  # same parameters, so the same cost
    assert pw._areas.resident() == 1  # and the same (fast) path


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page-fault counts are a Linux measurement")
def test_a_busy_worker_faults_no_pages():
    """At the shipped parameters a fresh 19 MiB allocation per call faults ~4,900 pages (11 ms of kernel time)."""
    pw = Passwords()
    stored = pw.hash("correct horse battery")
    pw.verify(stored, "correct horse battery")  # the area's pages are faulted in once
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for _ in range(3):
        assert pw.verify(stored, "correct horse battery")
    assert resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before < 300


@pytest.mark.timing  # a real idle timer
def test_idle_areas_give_their_memory_back():
    pw = Passwords(**SMALL)
    pw._areas = WorkAreas(2, SMALL["memory_kib"] * 1024, idle_release=0.05)
    stored = pw.hash("correct horse")
    assert pw.verify(stored, "correct horse")
    assert pw._areas.resident() == 1
    deadline = time.monotonic() + 5
    while pw._areas.resident() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pw._areas.resident() == 0
    assert pw.verify(stored, "correct horse")  # and work again afterwards


@pytest.mark.timing  # the overlap needs real concurrency
def test_at_most_count_computations_at_once():
    areas = WorkAreas(2, 64 * 1024)
    inside, peak, lock = [0], [0], threading.Lock()

    def work() -> None:
        with areas.lend():
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.02)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2


def test_without_areas_the_library_verifies(pw, monkeypatch):
    """Platforms without executable memory for cffi callbacks: correct answers, just slower."""
    import idp.users.passwords as module

    def refuse(nbytes: int) -> None:
        raise MemoryError("Cannot allocate write+execute memory for ffi.callback()")

    monkeypatch.setattr(module, "_Area", refuse)
    pw = Passwords(**SMALL)
    stored = pw.hash("correct horse")
    assert pw.verify(stored, "correct horse") is True
    assert pw.verify(stored, "wrong horse") is False
    assert pw._areas.resident() == 0
