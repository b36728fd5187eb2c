"""Inline first, threadpool on a cache miss: the I/O layers refuse to block the event loop."""

from __future__ import annotations

import threading

import pytest

from idp import nonblocking
from idp.nonblocking import run_cached
from idp.services import Services
from tests.oauthkit import make_user


async def test_work_without_io_runs_on_the_event_loop() -> None:
    def where() -> threading.Thread:
        return threading.current_thread()

    assert await run_cached(where) is threading.main_thread()


async def test_a_sql_read_moves_the_work_to_a_thread_and_gives_the_same_answer(container: Services) -> None:
    user = make_user(container, "cold")
    calls: list[threading.Thread] = []

    def read() -> str | None:
        calls.append(threading.current_thread())
        found = container.directory.store.get(user.id)  # the user cache is cold: a SELECT
        return found.username if found else None

    container.directory.store.save(user)  # a write drops the cached entry
    assert await run_cached(read) == "cold"
    assert calls[0] is threading.main_thread() and calls[1] is not threading.main_thread()
    calls.clear()
    assert await run_cached(read) == "cold"  # now cached: no I/O, one inline call
    assert calls == [threading.main_thread()]


def test_the_ephemeral_store_refuses_to_block_inline(container: Services) -> None:
    if type(container.ephemeral).__name__ != "RedisStore":
        pytest.skip("the in-process store does no I/O")
    with nonblocking.inline(), pytest.raises(nonblocking.WouldBlock):
        container.ephemeral.get("anything")
    assert container.ephemeral.get("anything") is None  # outside inline() it just works


def test_would_block_passes_through_except_exception() -> None:
    with pytest.raises(nonblocking.WouldBlock), nonblocking.inline():
        try:
            nonblocking.check()
        except Exception:  # a fallback that must not swallow the signal
            pytest.fail("WouldBlock was caught as an ordinary error")


async def test_a_cached_clients_secret_is_checked_on_the_event_loop(container: Services, monkeypatch) -> None:
    """Introspection and revocation authenticate their caller inline once the client is cached."""
    import base64

    from starlette.requests import Request

    from idp.oauth import client_auth
    from tests.oauthkit import web_client

    client, secret = web_client(container)
    basic = base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
    request = Request({"type": "http", "method": "POST", "headers": [(b"authorization", f"Basic {basic}".encode())]})
    threads: list[threading.Thread] = []
    real = client_auth.authenticate

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(client_auth, "authenticate", recording)
    container.clients.invalidate(client.client_id)  # cold: the first look reads SQL
    assert (await client_auth.authenticate_client(request, container, endpoint="introspection", form={})) == client
    threads.clear()
    assert (await client_auth.authenticate_client(request, container, endpoint="introspection", form={})) == client
    assert threads == [threading.main_thread()]


@pytest.mark.timing
def test_a_transaction_tried_inline_does_not_wait_for_the_writer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """SQLite: while another thread holds this process's writer lock, an inline BEGIN gives up at once."""
    import time

    from idp.store.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with engine.begin():
            holding.set()
            done.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        with pytest.raises(nonblocking.WouldBlock), nonblocking.inline(), engine.begin():
            pass
        assert time.monotonic() - started < 1.0  # the lock is held for up to 10 s
    finally:
        done.set()
        holder.join()
        engine.dispose()
