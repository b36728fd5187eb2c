"""Per-request cost of DPoP at a resource server (``idp.resource``): proof verification and thumbprint.

    python -m bench.dpop_cost [--seconds 1.0] [--json]

Every proof is fresh (its own ``jti``, as a client sends), made before the timing; one client key, as in
life, so the verifier's parsed-key cache is warm (a new key costs one parse more). Measured single-thread,
µs per operation, median of 5 batches:

* ``dpop_verify_{ES256,EdDSA}_us``: ``DPoPVerifier.verify`` with ``ath``, in-process replay cache;
* ``thumbprint_us``: the RFC 7638 thumbprint of the proof's JWK alone;
* ``dpop_request_us``: what the middleware adds up per request for a DPoP-bound ES256 token seen before:
  the token check (cache hit) plus :class:`idp.resource.binding.DPoPCheck` (an ES256 proof) and the
  deny-list lookup; ``dpop_requests_per_core_s`` is its inverse, next to ``bearer_requests_per_core_s``
  for the same token path without DPoP.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from bench import verify_cost
from bench.dpop_proofs import ProofMaker
from idp.clock import SystemClock
from idp.resource.binding import DPoPCheck
from idp.resource.dpop import DPoPVerifier, MemoryReplayCache, thumbprint

URL = "https://api.bench/orders"


def per_proof_us(make: Callable[[], str], use: Callable[[str], object], seconds: float) -> float:
    """Median of 5 timed batches of ``use(proof)``, each proof fresh (made before its batch), µs per call."""
    probe = [make() for _ in range(200)]
    t = time.perf_counter()
    for p in probe:
        use(p)
    each = (time.perf_counter() - t) / len(probe)
    batch = max(200, min(20_000, int(seconds / 5 / max(each, 1e-7))))
    samples = []
    for _ in range(5):
        proofs = [make() for _ in range(batch)]
        t = time.perf_counter()
        for p in proofs:
            use(p)
        samples.append((time.perf_counter() - t) / batch * 1e6)
    return sorted(samples)[2]


def _replay() -> MemoryReplayCache:
    return MemoryReplayCache(1_000_000)  # the timing, not the cap: never full here


def run(seconds: float = 1.0) -> dict[str, Any]:
    results: dict[str, Any] = {}
    token_verifier, token = verify_cost._verifiers(cache_size=10_000)["ES256"]
    now = SystemClock().now
    for alg in ("ES256", "EdDSA"):
        maker = ProofMaker(alg)
        verifier = DPoPVerifier(replay=_replay(), now=now)
        results[f"dpop_verify_{alg}_us"] = round(
            per_proof_us(lambda m=maker: m.proof("GET", URL, token),
                         lambda p, v=verifier: v.verify(p, method="GET", url=URL, access_token=token), seconds), 1
        )  # fmt: skip
    maker = ProofMaker("ES256")
    jwk = maker.key.as_dict(private=False)
    results["thumbprint_us"] = round(verify_cost.per_op_us(lambda: thumbprint(jwk), seconds / 2), 2)

    check = DPoPCheck(now=now, replay=_replay())
    deny = verify_cost._denyset(10_000)
    _, claims = token_verifier.verify_cached(token)
    bound = dict(claims, cnf={"jkt": maker.jkt})

    def request(proof: str) -> None:  # the token from the cache, its binding and proof, the deny-list
        token_verifier.verify_cached(token)
        check.check(token, bound, scheme="dpop", proofs=[proof], method="GET", url=URL)
        deny.is_denied(bound, "kid-1")

    results["dpop_request_us"] = round(per_proof_us(lambda: maker.proof("GET", URL, token), request, seconds), 1)
    bearer_us = verify_cost.per_op_us(lambda: (token_verifier.verify_cached(token), deny.is_denied(claims, "k")), 0.3)
    results["bearer_request_us"] = round(bearer_us, 2)
    results["dpop_requests_per_core_s"] = round(1e6 / results["dpop_request_us"])
    results["bearer_requests_per_core_s"] = round(1e6 / bearer_us)
    return results


def report(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"DPoP proof verification: ES256 {r['dpop_verify_ES256_us']} µs, EdDSA {r['dpop_verify_EdDSA_us']} µs",
            f"JWK thumbprint (RFC 7638): {r['thumbprint_us']} µs",
            f"a request with a DPoP-bound token seen before: {r['dpop_request_us']} µs"
            f" = {r['dpop_requests_per_core_s']}/s per core"
            f" (bearer: {r['bearer_request_us']} µs = {r['bearer_requests_per_core_s']}/s)",
        ]
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m bench.dpop_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=1.0, help="time budget per measurement")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    results = run(args.seconds)
    print(json.dumps(results, indent=2) if args.json else report(results))
    return results


if __name__ == "__main__":
    main()
