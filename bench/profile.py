"""A py-spy CPU profile of one idp worker while wrk drives the token endpoint.

``py-spy record --format raw`` writes collapsed stacks ("frame;frame;... count");
we summarise them as the functions with the most own (self) samples, the most
inclusive samples, and the share of samples per package. Idle samples (threads
waiting) are excluded by py-spy, so shares are of busy CPU time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")
PACKAGES = (
    "idp", "starlette", "uvicorn", "authlib", "joserfc", "cryptography", "sqlalchemy", "psycopg", "redis",
    "anyio", "asyncio", "orjson", "httptools", "uvloop", "h11", "multipart", "argon2", "jinja2", "pydantic",
)  # fmt: skip


def py_spy() -> str | None:
    found = Path(sys.executable).parent / "py-spy"
    return str(found) if found.exists() else shutil.which("py-spy")


def _package(path: str) -> str:
    parts = Path(path).parts
    if "site-packages" in parts:
        rest = parts[parts.index("site-packages") + 1 :]
        return rest[0].split(".")[0] if rest else "other"
    if "idp" in parts:
        return "idp"
    for name in ("asyncio", "concurrent", "threading", "selectors", "json", "base64", "hmac", "hashlib", "email"):
        if name in parts or Path(path).stem == name:
            return f"stdlib:{name}"
    return "stdlib:other" if "/lib/python" in path else "other"


def _short(frame: str) -> tuple[str, str]:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip(), "other"
    path = m["file"]
    parts = Path(path).parts
    if "site-packages" in parts:
        path = "/".join(parts[parts.index("site-packages") + 1 :])
    elif "idp" in parts:
        path = "/".join(parts[parts.index("idp") :])
    elif "/lib/python" in m["file"]:
        path = "stdlib/" + Path(path).name
    return f"{m['func']} ({path})", _package(m["file"])


# Leaf frames of threads parked in a wait that py-spy still samples as active (the
# threadpool's idle workers, uvicorn's supervisor pipe): counted apart, not as CPU.
WAITS = (
    "Condition.wait (stdlib/threading.py)",
    "Queue.get (stdlib/queue.py)",
    "Connection._recv (stdlib/connection.py)",
    "Connection.poll (stdlib/connection.py)",
    "wait (stdlib/connection.py)",
    "select (stdlib/selectors.py)",
    "Event.wait (stdlib/threading.py)",
)


# Leaf frames blocked on a PostgreSQL or Redis answer (the C code below them waits in poll/recv):
# wall time of a request, not CPU; counted apart so the busy shares are about CPU.
IO_WAITS = {
    "Connection.wait (psycopg/connection.py)": "postgresql",
    "SocketBuffer._read_from_socket (redis/_parsers/socket.py)": "redis",
}


def summarise(raw: str, top: int = 20) -> dict[str, Any]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    ours: Counter[str] = Counter()  # idp's own functions, inclusive: where to look first
    packages: Counter[str] = Counter()
    total = waiting = 0
    io_wait: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        if frames[-1][0] in WAITS:
            waiting += n
            continue
        if frames[-1][0] in IO_WAITS:
            io_wait[IO_WAITS[frames[-1][0]]] += n
            continue
        total += n
        leaf, pkg = frames[-1]
        own[leaf] += n
        packages[pkg] += n
        for name in {f for f, _ in frames}:
            inclusive[name] += n
        for name in {f for f, p in frames if p == "idp"}:
            ours[name] += n

    def pct(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"name": k, "samples": v, "pct": round(100 * v / total, 1)} for k, v in counter.most_common(top)]

    return {
        "samples": total,
        "waiting_samples": waiting,
        "io_wait_samples": dict(io_wait),
        "self": pct(own),
        "inclusive": pct(inclusive),
        "idp_inclusive": pct(ours),
        "packages": pct(packages),
    }


def record(pid: int, seconds: int, out: Path, load: Any) -> dict[str, Any]:
    """Profile ``pid`` for ``seconds`` while ``load()`` (a callable driving wrk) runs in a thread."""
    spy = py_spy()
    if spy is None:
        return {"error": "py-spy not installed (pip install py-spy)"}
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.setdefault("load", load()), daemon=True)
    worker.start()
    time.sleep(0.5)  # let the load reach steady state
    done = subprocess.run(
        [
            spy,
            "record",
            "-p",
            str(pid),
            "-d",
            str(seconds),
            "-r",
            "200",
            "-f",
            "raw",
            "--full-filenames",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    worker.join(timeout=seconds + 60)
    if done.returncode != 0 or not out.exists():
        return {"error": f"py-spy failed: {done.stderr.strip()[-400:]}"}
    summary = summarise(out.read_text())
    summary["load"] = result.get("load")
    summary["pid"] = pid
    summary["seconds"] = seconds
    return summary
