"""Real services the fault tests start, break and stop themselves, on their own loopback ports.

* :class:`RedisServer`: Debian's ``redis-server`` without persistence; ``stop()`` kills it
  (everything in it is lost, as in a crash), ``start()`` brings it back on the same port.
* :func:`fresh_database`: a PostgreSQL database for one test, migrated, dropped afterwards.
* :func:`kill_connections`: ``pg_terminate_backend`` on every connection to a database.
* :class:`IdpProcess`: ``uvicorn --factory idp.app:app_from_env`` as a subprocess.

Processes are ended by their own PID only.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from idp.config import load_settings
from idp.store.db import make_engine, upgrade
from tests.conftest import _unavailable

PG_ADMIN_URL = os.environ.get("IDP_TEST_PG", "postgresql://root@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def new_kek() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            _unavailable("redis-server (scripts/test-setup.sh installs it)")
        self.binary = binary
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(self.workdir), "--protected-mode", "yes"]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        """SIGKILL: a crash, not a shutdown (nothing is saved: --save '' --appendonly no)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _admin() -> object:
    import psycopg

    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=2)
    except Exception:
        _unavailable("PostgreSQL")


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A migrated PostgreSQL database for one test; its URL."""
    name = f"idp_fault_{secrets.token_hex(5)}"
    with _admin() as conn:  # type: ignore[attr-defined]
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        engine = make_engine(load_settings(database_url=url).sqlalchemy_url)
        upgrade(engine)
        engine.dispose()
        yield url
    finally:
        with _admin() as conn:  # type: ignore[attr-defined]
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def kill_connections(database_url: str) -> int:
    """pg_terminate_backend on every session of that database (the admin connection excepted)."""
    name = database_url.rsplit("/", 1)[1]
    with _admin() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return len(rows)


class IdpProcess:
    """The server as production runs it: a uvicorn subprocess with settings from the environment."""

    def __init__(self, env: dict[str, str], workdir: Path, *, workers: int = 1) -> None:
        self.port = free_port()
        self.env = {**env, "IDP_ISSUER": f"http://127.0.0.1:{self.port}"}
        self.workdir = workdir
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "uvicorn", "--factory", "idp.app:app_from_env", "--host", "127.0.0.1",
               "--port", str(self.port), "--workers", str(self.workers), "--timeout-graceful-shutdown", "20",
               "--no-access-log"]  # fmt: skip
        out = self.log.open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")} | self.env
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited during start:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"server not ready:\n{self.tail()}")

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:]) if self.log.exists() else ""

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
