"""Machine facts and versions for RESULTS.md."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import load, server


def _first(path: str, key: str, sep: str = ":") -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key) and sep in line:
                return line.split(sep, 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cmd(*args: str) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=10)
        return (done.stdout or done.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def _postgres() -> str:
    try:
        import psycopg

        with psycopg.connect(server.PG_ADMIN_URL, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else "unknown"
    except Exception:
        return "unreachable"


def _redis() -> str:
    try:
        import redis

        r = redis.Redis.from_url(server.REDIS_URL, socket_connect_timeout=3)
        try:
            return str(r.info("server")["redis_version"])
        finally:
            r.close()
    except Exception:
        return "unreachable"


# Raw cryptography costs (one thread, µs) on the box the absolute targets were set on.
REFERENCE_US = {"es256_sign": 20.0, "es256_verify": 57.0, "rs256_sign": 235.0}


def box_speed(seconds: float = 0.3) -> dict[str, Any]:
    """The same raw signatures the reference figures name, timed here: how this box compares with that one.

    Throughput targets are absolute, so a slower box (another CPU generation, a busy host) misses them by
    the factor printed; ratios to the peer measured in the same run do not depend on it.
    """
    import time

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    msg = b"x" * 300
    ec_key, rsa_key = ec.generate_private_key(ec.SECP256R1()), rsa.generate_private_key(65537, 2048)
    sig = ec_key.sign(msg, ec.ECDSA(hashes.SHA256()))
    ops = {
        "es256_sign": lambda: ec_key.sign(msg, ec.ECDSA(hashes.SHA256())),
        "es256_verify": lambda: ec_key.public_key().verify(sig, msg, ec.ECDSA(hashes.SHA256())),
        "rs256_sign": lambda: rsa_key.sign(msg, padding.PKCS1v15(), hashes.SHA256()),
    }
    out: dict[str, Any] = {}
    for name, op in ops.items():
        n, start = 0, time.process_time()
        while (elapsed := time.process_time() - start) < seconds:
            op()
            n += 1
        out[name + "_us"] = round(elapsed / n * 1e6, 1)
    ratios = [out[k + "_us"] / ref for k, ref in REFERENCE_US.items()]
    out["slower_than_reference"] = round((ratios[0] * ratios[1] * ratios[2]) ** (1 / 3), 2)
    return out


def machine() -> dict[str, Any]:
    mem_kib = int(_first("/proc/meminfo", "MemTotal").split()[0]) if Path("/proc/meminfo").exists() else 0
    return {
        "cpu_model": _first("/proc/cpuinfo", "model name"),
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": _first("/etc/os-release", "PRETTY_NAME", "=").strip('"'),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "avx512": "avx512f" in _first("/proc/cpuinfo", "flags"),
        "speed": box_speed(),
    }


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in (
        "idp", "uvicorn", "starlette", "authlib", "joserfc", "cryptography", "sqlalchemy", "psycopg", "redis",
        "argon2-cffi", "orjson", "uvloop", "httptools", "hiredis", "py-spy",
    ):  # fmt: skip
        out[pkg] = _version(pkg)
    out["node"] = _cmd("node", "--version")
    out |= server.peer_versions()
    out["wrk"] = load.wrk_version()
    out["postgresql"] = _postgres()
    out["redis-server"] = _redis()
    return out
