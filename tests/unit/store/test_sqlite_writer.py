"""SQLite: this process's transactions take turns on an in-process lock, and every way a transaction ends frees it."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import text

from idp.store.db import make_engine


def test_a_second_transaction_waits_for_the_first_to_commit(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.sqlite3'}")
    order: list[str] = []
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (v INTEGER)"))
    started = threading.Event()

    def second() -> None:
        started.set()
        with engine.begin() as c:
            order.append("second begins")
            c.execute(text("INSERT INTO t VALUES (2)"))

    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        worker = threading.Thread(target=second)
        worker.start()
        started.wait()
        order.append("first commits")
    worker.join(timeout=30)
    assert order == ["first commits", "second begins"]
    with engine.connect() as conn:
        assert [r[0] for r in conn.execute(text("SELECT v FROM t ORDER BY v"))] == [1, 2]
    engine.dispose()


def test_rollback_and_a_failed_statement_free_the_lock(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.sqlite3'}", pool_size=1)
    with engine.connect() as conn:
        conn.begin()
        conn.execute(text("CREATE TABLE t (v INTEGER PRIMARY KEY)"))
        conn.rollback()
    for _ in range(3):  # a statement that fails inside a transaction: the rollback frees it each time
        try:
            with engine.begin() as conn:
                conn.execute(text("SELECT * FROM missing"))
        except Exception:
            pass
    with engine.begin() as conn:  # would wait 30 s if any of the above had kept the lock
        conn.execute(text("CREATE TABLE t (v INTEGER PRIMARY KEY)"))
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    engine.dispose()
