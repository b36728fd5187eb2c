"""What ``idp.resource``'s deny-list mirror costs in memory and per check, at 10k and at 1M entries.

    python -m bench.denylist_memory [--sizes 10000,1000000]

For each size it builds the mirror a resource server holds after a snapshot
(:class:`idp.denylist.denyset.DenySet`: N ``jti`` entries in idp's format plus N/10 subject
cut-offs, as ``bench.verify_cost``), then reports the bytes it retains per entry (traced
by ``tracemalloc``: every allocation the set keeps, the input entries excluded, since they
are built one at a time and dropped), and the time of one ``is_denied`` check of a token
that is not on the list (``check_us``) and of one that is (``hit_us``). "Flat" means the
check at 1M costs what it costs at 10k.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

from idp.denylist.denyset import DenySet
from idp.denylist.entries import DenyEntry
from idp.tokens.access import new_jti

SIZES = (10_000, 1_000_000)


def _entries(n: int, now: float, jtis: list[str]) -> Iterator[DenyEntry]:
    for i in range(1, n + 1):
        jti = new_jti()
        if i <= len(jtis) or len(jtis) < 1000:
            jtis.append(jti) if len(jtis) < 1000 else None
        yield DenyEntry(i, "jti", jti, now + 600)
    for i in range(1, n // 10 + 1):
        yield DenyEntry(n + i, "subject", f"user-{i}", now + 600, now)


def _per_check_us(ds: DenySet, claims: list[dict[str, Any]], repeat: int = 50) -> float:
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(repeat):
            for c in claims:
                ds.is_denied(c, "kid-1")
        best = min(best, (time.perf_counter() - t) / (repeat * len(claims)))
    return best * 1e6


def measure(n: int, factory: type[DenySet] = DenySet) -> dict[str, Any]:
    now = time.time()
    jtis: list[str] = []
    gc.collect()
    tracemalloc.start(1)
    before = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    ds = factory(_entries(n, now, jtis), n + n // 10)
    build_s = time.perf_counter() - started
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before - sum(len(j) + 49 for j in jtis) - 8 * len(jtis)
    tracemalloc.stop()
    entries = len(ds)
    base = {"client_id": "c1", "sid": "s1", "iat": int(now), "sub": "someone"}
    misses = [base | {"jti": new_jti()} for _ in range(1000)]
    hits = [base | {"jti": j} for j in jtis]
    return {
        "entries": entries,
        "bytes_per_entry": round(held / entries, 1),
        "mib": round(held / 2**20, 1),
        "build_s_traced": round(build_s, 2),
        "check_us": round(_per_check_us(ds, misses), 3),
        "hit_us": round(_per_check_us(ds, hits), 3),
    }


def run(quick: bool = False, sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    """Flat keys for the bench report: ``<field>_<size>`` for each size (``10k``, ``1m``)."""
    out: dict[str, Any] = {}
    for n in sizes if not quick else (10_000, 100_000):
        label = f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1000}k"
        for key, value in measure(n).items():
            out[f"{key}_{label}"] = value
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m bench.denylist_memory", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    args = p.parse_args(argv)
    results = run(sizes=tuple(int(x) for x in args.sizes.split(",")))
    print(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
