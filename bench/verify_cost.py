"""Per-request cost at a resource server: the in-memory deny-list check and local JWT verification
(ES256, RS256, EdDSA) against one Redis GET on this machine.

    python -m bench.verify_cost [--seconds 1.0] [--redis redis://127.0.0.1:6379/0] [--entries 10000]

``run()`` returns the numbers as a dict (µs per operation, single thread) for bench.run.
The claim tested: "an RS256 verify costs more than a Redis hit, often by an order of magnitude".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import time
import warnings
from collections.abc import Callable
from typing import Any

import orjson
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey, RSAKey

from idp.clock import SystemClock
from idp.denylist.denyset import DenySet
from idp.denylist.entries import DenyEntry
from idp.keys.keyring import generate
from idp.resource.jwks import JwksCache
from idp.resource.verifier import AccessTokenVerifier

ISSUER, API = "https://idp.bench", "https://api.bench"
warnings.filterwarnings("ignore", "EdDSA is deprecated")  # RFC 9864 naming; OIDC still says EdDSA


def per_op_us(fn: Callable[[], object], seconds: float) -> float:
    """Median of 5 timed batches, µs per call."""
    batch = 1
    while True:  # size a batch to ~seconds/5
        t = time.perf_counter()
        for _ in range(batch):
            fn()
        if time.perf_counter() - t > seconds / 20 or batch > 1 << 22:
            break
        batch *= 2
    samples = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter() - t) / batch * 1e6)
    return sorted(samples)[2]


def _claims(now: int) -> dict[str, Any]:
    return {"iss": ISSUER, "sub": "u" * 22, "aud": API, "client_id": "c" * 22, "iat": now, "exp": now + 600,
            "jti": secrets.token_urlsafe(9), "scope": "api:read api:write", "sid": "s" * 22}  # fmt: skip


def _verifiers(cache_size: int = 0) -> dict[str, tuple[AccessTokenVerifier, str]]:
    """One verifier and token per algorithm; ``cache_size=0``: every call verifies the signature."""
    out: dict[str, tuple[AccessTokenVerifier, str]] = {}
    for alg in ("ES256", "RS256", "EdDSA"):
        kid, pem, public = generate(alg)
        cls: Any = {"ES256": ECKey, "RS256": RSAKey, "EdDSA": OKPKey}[alg]
        key = cls.import_key(pem)
        token = jws.serialize_compact(
            {"alg": alg, "typ": "at+jwt", "kid": kid}, orjson.dumps(_claims(int(time.time()))), key, algorithms=[alg]
        )
        jwks = JwksCache(f"{ISSUER}/jwks.json", None)  # type: ignore[arg-type]  # filled by hand, never fetches
        pub: Any = cls.import_key(public)
        jwks._keys = {kid: (alg, pub)}
        jwks._expires = float("inf")
        verifier = AccessTokenVerifier(
            issuer=ISSUER, audience=API, jwks=jwks, clock=SystemClock(), cache_size=cache_size
        )
        out[alg] = (verifier, token)
    return out


def _denyset(entries: int) -> DenySet:
    now = time.time()
    rows = [DenyEntry(i, "jti", secrets.token_urlsafe(9), now + 600) for i in range(1, entries + 1)]
    rows += [DenyEntry(entries + i, "subject", f"user-{i}", now + 600, now) for i in range(1, entries // 10 + 1)]
    return DenySet(rows, len(rows))


def _redis_get(url: str, seconds: float) -> float | None:
    try:
        import redis

        r = redis.Redis.from_url(url, socket_connect_timeout=1)
        key = f"bench:verify_cost:{secrets.token_hex(4)}"
        r.set(key, b"x" * 16, ex=60)
        try:
            return per_op_us(lambda: r.get(key), seconds)
        finally:
            r.delete(key)
            r.close()
    except Exception as exc:  # Redis not running: report without it
        print(f"  (no Redis at {url}: {type(exc).__name__})")
        return None


async def _redis_get_async(url: str, n: int = 5000) -> float | None:
    try:
        import redis.asyncio

        r = redis.asyncio.Redis.from_url(url, socket_connect_timeout=1)
        key = f"bench:verify_cost:{secrets.token_hex(4)}"
        await r.set(key, b"x" * 16, ex=60)
        for _ in range(200):
            await r.get(key)
        t = time.perf_counter()
        for _ in range(n):
            await r.get(key)
        us = (time.perf_counter() - t) / n * 1e6
        await r.delete(key)
        await r.aclose()
        return us
    except Exception:
        return None


def run(seconds: float = 1.0, redis_url: str | None = None, entries: int = 10_000) -> dict[str, Any]:
    redis_url = redis_url or os.environ.get("IDP_TEST_REDIS", "redis://127.0.0.1:6379/0")
    results: dict[str, Any] = {"entries": entries + entries // 10}
    ds = _denyset(entries)
    clean = _claims(int(time.time()))
    denied = dict(clean, sub="user-3", iat=int(time.time()) - 5)
    results["denylist_check_us"] = round(per_op_us(lambda: ds.is_denied(clean, "kid-1"), seconds), 3)
    results["denylist_hit_us"] = round(per_op_us(lambda: ds.is_denied(denied, "kid-1"), seconds), 3)
    for alg, (verifier, token) in _verifiers().items():  # a token seen for the first time
        results[f"verify_{alg}_us"] = round(per_op_us(lambda v=verifier, t=token: v.verify_cached(t), seconds), 1)
    verifier, token = _verifiers(cache_size=10_000)["ES256"]  # the same token again: what most requests are
    results["verify_ES256_repeat_us"] = round(per_op_us(lambda: verifier.verify_cached(token), seconds), 2)
    get_us = _redis_get(redis_url, seconds)
    results["redis_get_us"] = None if get_us is None else round(get_us, 1)
    async_us = asyncio.run(_redis_get_async(redis_url)) if get_us is not None else None
    results["redis_get_async_us"] = None if async_us is None else round(async_us, 1)
    if get_us:
        for alg in ("ES256", "RS256", "EdDSA"):
            results[f"verify_{alg}_vs_redis_get"] = round(results[f"verify_{alg}_us"] / get_us, 2)
    return results


def report(r: dict[str, Any]) -> str:
    lines = [
        f"deny-list check ({r['entries']} entries, miss): {r['denylist_check_us']} µs; hit: {r['denylist_hit_us']} µs",
        *(f"local verify {alg}: {r[f'verify_{alg}_us']} µs" for alg in ("ES256", "RS256", "EdDSA")),
        f"local verify ES256, a token verified before (cache hit): {r['verify_ES256_repeat_us']} µs",
    ]
    if r.get("redis_get_us"):
        lines.append(f"Redis GET (loopback): sync {r['redis_get_us']} µs, asyncio {r['redis_get_async_us']} µs")
        for alg in ("ES256", "RS256", "EdDSA"):
            lines.append(f"  {alg} verify / Redis GET = {r[f'verify_{alg}_vs_redis_get']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m bench.verify_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=1.0, help="time budget per measurement")
    p.add_argument("--redis", default=None, help="Redis URL (default IDP_TEST_REDIS or local 6379)")
    p.add_argument("--entries", type=int, default=10_000, help="jti entries in the deny-list (+10%% subjects)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    results = run(args.seconds, args.redis, args.entries)
    print(json.dumps(results, indent=2) if args.json else report(results))
    return results


if __name__ == "__main__":
    main()
