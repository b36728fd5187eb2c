"""The Argon2id ceiling of this box: how many verifications per second the cores can do at all.

The hosted-login target is a share of this ceiling, so the bench measures it in the same run,
at the server's parameters, with argon2-cffi (what idp links): one process per core verifying
in a loop for ``seconds``, started together, plus the time of one verification in a single
process alone. Nothing else of idp runs; the load generator is idle while it is measured.

    python -m bench.argon2_ceiling [--seconds 1.5] [--memory-kib 19456 --time-cost 2 --parallelism 1]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import time
from multiprocessing.synchronize import Barrier
from typing import Any

PASSWORD = "correct horse battery staple"


def _worker(params: dict[str, int], seconds: float, start: Barrier, out: Any) -> None:
    """Verify in a loop from the common start for ``seconds``; report (count, elapsed, cpu, per-call times)."""
    from argon2 import PasswordHasher, Type

    ph = PasswordHasher(
        time_cost=params["time_cost"], memory_cost=params["memory_kib"], parallelism=params["parallelism"], type=Type.ID
    )
    stored = ph.hash(PASSWORD)
    ph.verify(stored, PASSWORD)  # warm: first allocation, code paths
    start.wait()
    times: list[float] = []
    t0, c0 = time.perf_counter(), time.process_time()
    while (now := time.perf_counter()) - t0 < seconds:
        ph.verify(stored, PASSWORD)
        times.append(time.perf_counter() - now)
    out.put((len(times), time.perf_counter() - t0, time.process_time() - c0, times))


def _run(params: dict[str, int], processes: int, seconds: float) -> list[tuple[int, float, float, list[float]]]:
    ctx = multiprocessing.get_context("spawn")  # no state copied from the bench (threads, sockets)
    start, out = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(params, seconds, start, out), daemon=True) for _ in range(processes)]
    for p in procs:
        p.start()
    try:
        return [out.get(timeout=seconds + 60) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()


def measure(params: dict[str, int], *, seconds: float = 1.5, processes: int | None = None) -> dict[str, Any]:
    """``ceiling_per_s``: verifications/s of ``processes`` (default: one per core) together (their CPU per
    verification: ``hash_cpu_ms_together``); ``hash_ms``: median wall time of one verification in one process
    alone (``hash_cpu_ms`` its CPU)."""
    processes = processes or os.cpu_count() or 1
    (n1, _, cpu1, times1), *_ = _run(params, 1, max(seconds / 3, 0.3))
    together = _run(params, processes, seconds)
    return {
        "ceiling_per_s": round(sum(n / elapsed for n, elapsed, _, _ in together), 1),
        "hash_ms": round(statistics.median(times1) * 1000, 2),
        "hash_cpu_ms": round(cpu1 / max(n1, 1) * 1000, 2),
        "hash_cpu_ms_together": round(
            sum(c for _, _, c, _ in together) / max(sum(n for n, *_ in together), 1) * 1000, 2
        ),
        "ceiling_processes": processes,
    }


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.argon2_ceiling")
    p.add_argument("--seconds", type=float, default=1.5)
    p.add_argument("--processes", type=int)
    p.add_argument("--memory-kib", type=int, default=19_456)
    p.add_argument("--time-cost", type=int, default=2)
    p.add_argument("--parallelism", type=int, default=1)
    a = p.parse_args()
    params = {"memory_kib": a.memory_kib, "time_cost": a.time_cost, "parallelism": a.parallelism}
    print(json.dumps(params | measure(params, seconds=a.seconds, processes=a.processes)))


if __name__ == "__main__":
    main()
