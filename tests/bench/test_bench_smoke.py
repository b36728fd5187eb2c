"""CI smoke test of the benchmark harness: a tiny bounded piece of ``make bench``.

Starts the embedded server the way the bench does (``idp serve`` on a free loopback
port), drives 200 discovery and 200 client_credentials requests through the Python
load generator, and checks the result dicts and the /proc accounting. No timing
assertions: numbers on a shared CI box mean nothing.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bench import flows, load, server
from bench.profile import summarise
from bench.report import aggregate
from bench.report_md import render

FIELDS = {"requests", "ok", "errors", "elapsed_s", "rps", "p50_ms", "p99_ms", "statuses"}


@pytest.fixture
def embedded(tmp_path: Path):
    srv = server.start_idp("idp-embedded", backend="embedded", workers=1, run_dir=tmp_path)
    try:
        yield srv
    finally:
        srv.stop()
    assert srv.proc is None


async def test_discovery_and_client_credentials_through_the_python_generator(embedded: server.Server) -> None:
    paths = flows.endpoints(embedded)
    service = embedded.info["service"]
    cc_headers = {"content-type": flows.FORM_CT, "authorization": flows.basic(service)}
    tokens: list[str] = []

    async def discovery(client: httpx.AsyncClient, i: int) -> bool:
        r = await client.get(paths["discovery"])
        return r.status_code == 200 and r.json()["issuer"] == embedded.base_url

    async def client_credentials(client: httpx.AsyncClient, i: int) -> bool:
        r = await client.post(paths["token"], content=flows.cc_body(), headers=cc_headers)
        if r.status_code == 200 and i == 0:
            tokens.append(r.json()["access_token"])
        return r.status_code == 200

    cpu0 = embedded.cpu()
    results = {}
    for name, flow in (("discovery", discovery), ("client_credentials", client_credentials)):
        results[name] = await load.run_python(embedded.base_url, flow, total=200, concurrency=8, max_seconds=60)
    cpu1 = embedded.cpu()

    for name, result in results.items():
        assert result.keys() >= FIELDS, name
        assert result["requests"] == 200, (name, result)
        assert result["errors"] == 0, (name, result)
        assert result["ok"] == 200
    assert cpu1 > cpu0  # the server's own CPU is read from /proc
    assert embedded.rss() and all(r > 0 for r in embedded.rss())
    shape = flows.jwt_parts(tokens[0])
    assert shape is not None and shape["header"]["alg"] == "ES256" and shape["header"]["typ"] == "at+jwt"


def test_report_renders_from_a_minimal_result() -> None:
    run = {"requests": 10, "ok": 10, "errors": 0, "rps": 5.0, "p50_ms": 1.0, "p99_ms": 2.0, "cpu_us": 100.0}
    results = {
        "meta": {
            "started": "now", "argv": [], "rounds": 1, "duration_s": 1, "connections": 16, "wrk_threads": 2,
            "elapsed_s": 1.0, "machine": {"cpu_model": "x", "cores": 2, "ram_gib": 1, "kernel": "k", "os": "o",
                                          "load_average": [0, 0, 0]},
        },
        "modes": {"idp-pg-2w": {"kind": "idp", "backend": "postgres", "workers": 2, "rss_mib_final": [100.0]},
                  "peer-2p": {"kind": "peer", "backend": "redis", "workers": 2}},
        "rows": {"client_credentials": {"title": "cc", "targets": {"idp-pg-2w": {"runs": [run]},
                                                                    "peer-2p": {"runs": [run | {"rps": 4.0}]}}}},
    }  # fmt: skip
    aggregate(results)
    assert results["side_by_side"][0]["idp-pg-2w/peer-2p"]["ratio"] == 1.25
    text = render(results)
    assert "| `idp-pg-2w` | 5 |" in text and "1.25×" in text


def test_profile_summary_leaves_out_parked_threads() -> None:
    site = "/x/lib/python3.11/site-packages"
    raw = "\n".join(
        [
            f"main ({site}/uvicorn/main.py:1);sign ({site}/joserfc/a.py:2) 3",
            "run (/x/lib/python3.11/threading.py:1);Condition.wait (/x/lib/python3.11/threading.py:9) 5",
        ]
    )
    s = summarise(raw)
    assert s["samples"] == 3 and s["waiting_samples"] == 5
    assert s["self"][0]["name"].startswith("sign (joserfc/")
    assert s["packages"][0]["name"] == "joserfc"


def test_dpop_cost_measures_fresh_proofs() -> None:
    """bench/dpop_cost.py: each timed proof is verified (a replayed one would raise), and the rates derive."""
    from bench import dpop_cost

    r = dpop_cost.run(seconds=0.05)
    assert r["dpop_verify_ES256_us"] > 0 and r["dpop_verify_EdDSA_us"] > 0 and r["thumbprint_us"] > 0
    assert r["dpop_requests_per_core_s"] == round(1e6 / r["dpop_request_us"])
