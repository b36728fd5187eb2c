"""`idp serve --workers 2`: metrics are merged across workers (prometheus multiprocess mode).

A real server in a subprocess on loopback ports, PostgreSQL + Redis (several workers need Redis).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.live_server import free_port
from tests.obskit import sample

pytestmark = pytest.mark.timing  # real worker processes

TOKEN = "scrape-token-for-the-worker-test"


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"idp serve exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("idp serve did not become ready")


def test_two_workers_report_merged_counters_on_both_ports(backend, container, settings, tmp_path: Path) -> None:
    if backend.name != "postgres":
        pytest.skip("several workers need Redis")
    container.keyring.tick()
    port, metrics_port = free_port(), free_port()
    prom_dir = tmp_path / "prom"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env |= {
        "IDP_DATABASE_URL": settings.database_url,
        "IDP_REDIS_URL": settings.redis_url,
        "IDP_REDIS_PREFIX": settings.redis_prefix,
        "IDP_KEK": settings.kek,
        "IDP_ISSUER": f"http://127.0.0.1:{port}",
        "IDP_DEMO": "false",
        "IDP_METRICS_TOKEN": TOKEN,
        "IDP_METRICS_PORT": str(metrics_port),
        "PROMETHEUS_MULTIPROC_DIR": str(prom_dir),
    }
    cmd = [sys.executable, "-m", "idp.cli", "serve", "--port", str(port), "--workers", "2"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # noqa: S603
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(f"{base}/healthz", proc)
        before = sample(httpx.get(f"{base}/metrics", headers={"authorization": f"Bearer {TOKEN}"}).text,
                        "idp_http_requests_total", endpoint="/healthz") or 0  # fmt: skip
        n = 40
        for _ in range(n):  # a new connection each time: the kernel spreads them over the workers
            assert httpx.get(f"{base}/healthz", headers={"connection": "close"}).status_code == 200
        pids = {p.name.split("_")[-1] for p in prom_dir.glob("counter_*.db")}
        assert len(pids) >= 2, "both workers should have served (and written) something"
        for _ in range(4):  # whichever worker answers the scrape reports every worker's requests
            text = httpx.get(f"{base}/metrics", headers={"authorization": f"Bearer {TOKEN}"}).text
            assert sample(text, "idp_http_requests_total", endpoint="/healthz") == before + n
        plain = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text  # the private port needs no token
        assert sample(plain, "idp_http_requests_total", endpoint="/healthz") == before + n
        assert sample(plain, "idp_signing_keys", alg="ES256", state="active") == 1
        assert httpx.get(f"{base}/metrics").status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
