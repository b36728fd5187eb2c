"""SIGTERM during load against a real uvicorn process.

In-flight requests finish (answers keep arriving after the signal, for requests sent
before it), new connections are refused, the process exits cleanly well inside the graceful
timeout (an open deny-list SSE stream does not hold it up), and the client never sees a
5xx: only answers or connection errors.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest

from idp.config import Settings
from idp.services import build_services, check_kek
from idp.store.db import upgrade
from tests.robustness.services import IdpProcess, new_kek

pytestmark = [pytest.mark.timing, pytest.mark.timeout(120)]  # real processes
CONNECTION_ERRORS = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError,
                     httpx.ConnectTimeout, httpx.PoolTimeout)  # fmt: skip


def prepare(tmp_path: Path) -> tuple[dict[str, str], str, str]:
    """An embedded-backend database with a service client; the env to serve it."""
    env = {
        "IDP_DATA_DIR": str(tmp_path),
        "IDP_DATABASE_URL": f"sqlite:///{tmp_path / 'idp.sqlite3'}",
        "IDP_KEK": new_kek(),
        "IDP_KEK_FILE": str(tmp_path / "kek"),
        "IDP_DEMO": "false",
        "IDP_LOG_LEVEL": "WARNING",
        "IDP_LOGIN_MAX_FAILURES": "100",
    }
    values = {k.removeprefix("IDP_").lower(): v for k, v in env.items()}
    c = build_services(Settings(**values))  # type: ignore[arg-type]
    try:
        upgrade(c.engine)
        check_kek(c)
        c.keyring.tick()
        svc, secret = c.clients.create(name="load", kind="service", scope="api:read deny-list:read")
        c.directory.create("alice", "correct horse battery staple")
        assert secret is not None
        return env, svc.client_id, secret
    finally:
        c.close()


async def test_sigterm_during_load_finishes_in_flight_requests(tmp_path: Path) -> None:
    env, client_id, secret = prepare(tmp_path)
    server = IdpProcess(env, tmp_path)
    server.start()
    answers: list[tuple[int, float, float]] = []  # status, sent, received
    errors: list[tuple[str, float]] = []
    signalled = 0.0
    try:
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=0)  # new connection per request
        async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as http:

            async def loop(i: int) -> None:
                while True:
                    sent = time.monotonic()
                    try:
                        if i % 3 == 0:  # Argon2id verify: the slowest request we have
                            r = await http.post("/login", data={"username": "alice", "password": "wrong"})
                        elif i % 3 == 1:
                            r = await http.post("/token", data={"grant_type": "client_credentials"},
                                                auth=(client_id, secret))  # fmt: skip
                        else:
                            r = await http.get("/jwks.json")
                    except CONNECTION_ERRORS as exc:
                        errors.append((type(exc).__name__, sent))
                        if signalled and sent > signalled:
                            return  # the server is gone
                        await asyncio.sleep(0.01)
                        continue
                    answers.append((r.status_code, sent, time.monotonic()))

            async def stream() -> int:
                async with http.stream("GET", "/deny-list/events", auth=(client_id, secret)) as r:
                    n = 0
                    async for _ in r.aiter_bytes():
                        n += 1
                    return r.status_code

            streaming = asyncio.create_task(stream())
            tasks = [asyncio.create_task(loop(i)) for i in range(24)]
            await asyncio.sleep(1.5)
            signalled = time.monotonic()
            server.terminate()
            code = await asyncio.to_thread(server.wait, 25)
            exited = time.monotonic()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
            with_stream = await asyncio.wait_for(streaming, 10)
    finally:
        server.kill()

    # uvicorn re-raises the signal once its graceful shutdown is complete, so -SIGTERM is a clean exit.
    assert code in (0, -signal.SIGTERM), server.tail()
    assert "Application shutdown complete" in server.tail(), server.tail()
    assert exited - signalled < 15, "shutdown waited for something (an open stream?)"
    assert with_stream == 200
    statuses = {s for s, _, _ in answers}
    assert all(s < 500 for s in statuses), (statuses, server.tail())
    before = [a for a in answers if a[1] < signalled]
    assert len(before) > 50, "no load before the signal"
    assert any(recv > signalled for _, sent, recv in answers if sent < signalled), "no in-flight request finished"
    assert {name for name, _ in errors} <= {e.__name__ for e in CONNECTION_ERRORS}
