"""Server process accounting from /proc: CPU seconds of a process tree, RSS per process.

CPU is read from ``/proc/<pid>/stat`` (utime + stime, clock ticks) for the server's
whole process tree (supervisor and every worker) before and after a load run; the
difference divided by the requests served is the server CPU per request, which does
not depend on how the two cores are shared with the load generator.
"""

from __future__ import annotations

import os
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                out.extend(int(p) for p in (task / "children").read_text().split())
            except OSError:
                continue
    except OSError:
        pass
    return out


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (breadth first)."""
    seen: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop(0)
        if p in seen or not Path(f"/proc/{p}").exists():
            continue
        seen.append(p)
        todo.extend(children(p))
    return seen


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / CLK_TCK


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def backing_pids(database: str | None) -> list[int]:
    """Read-only: the PostgreSQL backends serving ``database`` (their command line names it) and redis-server.

    Redis is one process shared with anything else on the box, so its share is approximate.
    """
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith("redis-server") or (
            database and comm == "postgres" and f" {database} " in cmdline(int(entry.name))
        ):
            out.append(int(entry.name))
    return out


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    return {pid: cpu_seconds([pid]) for pid in pids}


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two snapshots by the processes alive at the end (new ones count in full)."""
    return sum(max(cpu - before.get(pid, 0.0), 0.0) for pid, cpu in after.items())
