"""Rows measured by modules other engineers own, imported and included as they are:

* ``bench/verify_cost.py``: ``idp.resource`` local verifications per second (deny-list in memory);
* ``bench/revocation_latency.py``: revocation-to-rejection latency at a resource server (p50/p99);
* ``bench/dpop_cost.py``: ``idp.resource`` DPoP proof verification and thumbprint, requests per core.
* ``bench/backchannel_latency.py``: sign-out-everywhere to 10 RPs' back-channel logout receivers (p50/p99).
* ``bench/bff_proxy.py``: what the BFF adds per proxied API call (p50/p99 direct vs through it, BFF CPU µs).
* ``bench/soak.py`` (``mixed``): the sustained mixed-load row, its errors and p99;
* ``bench/scale.py``: refresh at 1M stored refresh families and sign-in at 100k users against empty tables;
* ``bench/denylist_memory.py``: the deny-list mirror's bytes per entry and check time at 10k and 1M entries.

Each exposes a function returning a dict. Its keyword arguments are filled by name from
what the harness has: ``base_url``/``issuer``, ``server``, ``target``, ``env``, ``quick``,
``duration``/``seconds``. It runs once per round; numeric fields are reported as medians.
"""

from __future__ import annotations

import importlib
import inspect
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.rows import Budget, Target

EXTERNAL = [
    ("resource_verify", "bench.verify_cost", "idp.resource local verification"),
    ("revocation_latency", "bench.revocation_latency", "Revocation-to-rejection latency at a resource server"),
    ("dpop_verify", "bench.dpop_cost", "idp.resource DPoP verification (proof + thumbprint), per core"),
    ("backchannel_latency", "bench.backchannel_latency", "Sign-out-everywhere to 10 RPs' back-channel receivers"),
    ("bff_proxy", "bench.bff_proxy", "BFF proxy: an API call direct vs through the BFF (latency, BFF CPU)"),
    ("mixed", "bench.soak", "Sustained mixed load: refresh + code exchange + revocation + client_credentials"),
    ("scale", "bench.scale", "Cost at scale: refresh at 1M stored families, sign-in at 100k users"),
    ("denylist_memory", "bench.denylist_memory", "idp.resource deny-list mirror: bytes/entry, check at 10k and 1M"),
]
# Arguments the harness chooses (others are filled by name, see the module docstring), and how
# many times each runs: per round, or once (the latency run times n revocations itself).
CHOSEN: dict[str, Callable[[Budget], dict[str, Any]]] = {
    "resource_verify": lambda b: {"seconds": 0.3 if b.quick else 1.0},
    "revocation_latency": lambda b: {"n": 30 if b.quick else 100, "backend": "postgres", "path": "api"},
    "dpop_verify": lambda b: {"seconds": 0.3 if b.quick else 1.0},
    "backchannel_latency": lambda b: {"n": 10 if b.quick else 50, "rps": 10, "backend": "postgres"},
    "bff_proxy": lambda b: {"seconds": 2.0 if b.quick else 5.0},
    "mixed": lambda b: {"seconds": 5.0 if b.quick else 60.0},
}
ONCE = {"revocation_latency", "backchannel_latency", "denylist_memory", "mixed", "scale", "bff_proxy"}
PREFERRED = ("run", "measure", "bench", "mixed", "main")


def _entry(module: Any) -> Callable[..., Any] | None:
    for name in PREFERRED:
        fn = getattr(module, name, None)
        if callable(fn):
            return fn
    funcs = [
        f
        for n, f in inspect.getmembers(module, inspect.isfunction)
        if not n.startswith("_") and f.__module__ == module.__name__
    ]
    hinted = [f for f in funcs if "dict" in str(inspect.signature(f).return_annotation)]
    return (hinted or funcs or [None])[0]


def _kwargs(fn: Callable[..., Any], t: Target | None, b: Budget) -> dict[str, Any]:
    have: dict[str, Any] = {"quick": b.quick, "duration": b.duration, "seconds": b.duration}
    if t is not None:
        have |= {"base_url": t.server.base_url, "issuer": t.server.base_url, "server": t.server, "target": t}
        have["env"] = t.server.info.get("env", {})
    out = {}
    for name, p in inspect.signature(fn).parameters.items():
        if name in have:
            out[name] = have[name]
        elif p.default is inspect.Parameter.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            raise TypeError(f"cannot supply required argument {name!r}")
    return out


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in runs[0]:
        values = [r.get(key) for r in runs]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            out[key] = round(statistics.median(values), 3)  # type: ignore[arg-type]
        else:
            out[key] = values[-1]
    return out


def _derive(key: str, value: dict[str, Any]) -> dict[str, Any]:
    """The figure the issue's target is stated in: ES256 verifications per second per core, deny-list included."""
    if key == "resource_verify" and value.get("verify_ES256_us"):
        deny = value.get("denylist_check_us") or 0
        out = value | {"es256_verifications_per_core_s": round(1e6 / (value["verify_ES256_us"] + deny))}
        if value.get("verify_ES256_repeat_us"):
            out["es256_repeat_per_core_s"] = round(1e6 / (value["verify_ES256_repeat_us"] + deny))
        return out
    return value


def run_all(
    targets: list[Target], b: Budget, rounds: int, log: Callable[[str], None], only: set[str] | None = None
) -> dict[str, Any]:
    """Every external row, or those in ``only`` (``--rows`` names them like the other rows)."""
    idps = [t for t in targets if t.is_idp]
    t = next((x for x in idps if x.name == "idp-pg-2w"), idps[-1] if idps else None)
    results: dict[str, Any] = {}
    for key, module_name, title in EXTERNAL:
        if only is not None and key not in only:
            continue
        entry: dict[str, Any] = {"title": title, "module": module_name}
        results[key] = entry
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            entry["unavailable"] = f"{module_name} not present yet ({exc.name})"
            continue
        fn = _entry(module)
        if fn is None:
            entry["unavailable"] = f"{module_name} exposes no function"
            continue
        entry["function"] = fn.__name__
        try:
            kwargs = _kwargs(fn, t, b) | CHOSEN.get(key, lambda _: {})(b)
        except TypeError as exc:
            entry["unavailable"] = str(exc)
            continue
        kwargs = {k: v for k, v in kwargs.items() if k in inspect.signature(fn).parameters}
        entry["arguments"] = {k: v for k, v in kwargs.items() if isinstance(v, str | int | float | bool)}
        if any(k in kwargs for k in ("server", "target", "base_url", "issuer", "env")) and t is not None:
            entry["target"] = t.name
        runs = []
        for rnd in range(1 if key in ONCE else rounds):
            log(f"round {rnd + 1}/{rounds} {key} ({module_name}.{fn.__name__})")
            start = time.perf_counter()
            try:
                value = fn(**kwargs)
            except Exception as exc:
                entry.setdefault("failures", []).append(f"round {rnd + 1}: {type(exc).__name__}: {exc}")
                continue
            if isinstance(value, dict):
                runs.append(_derive(key, value) | {"wall_s": round(time.perf_counter() - start, 2)})
        entry["runs"] = runs
        if runs:
            entry["median"] = _median(runs)
    return results
