"""The access lines of a server run as production runs it (batched on stderr, no LogRecord per request)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.robustness.services import IdpProcess
from tests.robustness.test_sigterm import prepare

pytestmark = [pytest.mark.timing, pytest.mark.timeout(120)]  # real processes


def test_each_request_gets_one_json_access_line_with_its_request_id(tmp_path: Path) -> None:
    env, client_id, secret = prepare(tmp_path)
    server = IdpProcess(env | {"IDP_LOG_LEVEL": "INFO"}, tmp_path)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for i in range(3):
                assert http.get("/jwks.json", headers={"x-request-id": f"jwks-{i}"}).status_code == 200
            r = http.post("/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret),
                          headers={"x-request-id": "cc-1"})  # fmt: skip
            assert r.status_code == 200
        deadline = time.monotonic() + 5
        while True:
            lines = [json.loads(x) for x in server.log.read_text().splitlines() if x.startswith("{")]
            access = {x["request_id"]: x for x in lines if x.get("logger") == "idp.access"}
            if {"jwks-0", "jwks-1", "jwks-2", "cc-1"} <= access.keys() or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        server.terminate()
        server.wait(30)
    assert access["jwks-1"] | {"ts": "", "latency_ms": 0} == {
        "ts": "", "level": "info", "logger": "idp.access", "msg": "request", "request_id": "jwks-1",
        "method": "GET", "endpoint": "/jwks.json", "status": 200, "latency_ms": 0, "ip": "127.0.0.1",
    }  # fmt: skip
    assert access["cc-1"]["client_id"] == client_id and access["cc-1"]["endpoint"] == "/token"
    assert secret not in server.log.read_text()
    assert access["jwks-0"]["ts"].endswith("Z") and len(access["jwks-0"]["ts"]) == len("2026-01-01T00:00:00.000Z")
