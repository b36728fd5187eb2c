"""Helpers of the robustness suite (see README.md in this folder).

* :class:`Site`: the app with its routes, an in-process client that *returns* 500s instead
  of raising them (so a failure shows the request), and the container.
* :func:`fuzz_settings`: hypothesis settings. The CI subset is small, fixed and derandomised;
  ``IDP_FUZZ_EXAMPLES=N`` (``make fuzz``) raises the example count of every property.
* ``assert_*``: the RFC shapes every answer must have.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from hypothesis import HealthCheck, settings
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from idp.services import Services
from tests.conftest import _unavailable

ISSUER = "https://idp.test"
FUZZ_EXAMPLES = int(os.environ.get("IDP_FUZZ_EXAMPLES", "0"))


LONG_EXAMPLES = FUZZ_EXAMPLES or 300
"""Examples per property in the long run (``make fuzz``; ``IDP_FUZZ_EXAMPLES`` overrides)."""


def fuzz_settings(ci_examples: int, *, long: bool = False) -> settings:
    """CI: ``ci_examples``, derandomised (same cases every run). Long (slow tests): LONG_EXAMPLES, random."""
    return settings(
        max_examples=LONG_EXAMPLES if long else ci_examples,
        derandomize=not long,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# RFC 6749 §5.2: error and error_description are printable ASCII without '"' and '\'.
ERROR_CODE = re.compile(r"^[\x20\x21\x23-\x5b\x5d-\x7e]+$")


@dataclass
class Site:
    app: Starlette
    http: httpx.AsyncClient
    c: Services

    def paths(self) -> list[tuple[str, frozenset[str]]]:
        """(path template, methods) of every route, HEAD folded into GET; mounts as ``/prefix/{path}``."""
        out: list[tuple[str, frozenset[str]]] = []
        for r in self.app.routes:
            if isinstance(r, Route):
                out.append((r.path, frozenset((r.methods or {"GET"}) - {"HEAD"})))
            elif isinstance(r, Mount):
                out.append((r.path + "/{path}", frozenset({"GET"})))
        return out

    def has(self, path: str, method: str = "GET") -> bool:
        return any(p == path and method in m for p, m in self.paths())


@dataclass
class SyncSite:
    site: Site
    request: Callable[..., httpx.Response]


def need(site: Site, path: str, method: str = "GET") -> None:
    """Skip a check of an endpoint this build does not serve; with ``CI`` set, a missing route fails instead."""
    if not site.has(path, method):
        _unavailable(f"the route {method} {path}")


def describe(r: httpx.Response) -> str:
    req = r.request
    try:
        body = req.content[:300]
    except httpx.RequestNotRead:
        body = b"<stream>"
    return f"{req.method} {req.url} body={body!r} -> {r.status_code} {r.text[:300]!r}"


def assert_sane(r: httpx.Response) -> None:
    """No 5xx, and every JSON error in the RFC 6749 §5.2 / RFC 6750 §3 shape."""
    assert r.status_code < 500, describe(r)
    ctype = r.headers.get("content-type", "")
    if r.status_code >= 400 and ctype.startswith("application/json"):
        body: Any = r.json()
        assert isinstance(body, dict), describe(r)
        if "error" in body:  # RFC 7807 problem documents (admin API) carry title/status instead
            assert isinstance(body["error"], str) and ERROR_CODE.match(body["error"]), describe(r)
            desc = body.get("error_description")
            assert desc is None or (isinstance(desc, str) and ERROR_CODE.match(desc)), describe(r)
        else:
            assert "title" in body or "detail" in body, describe(r)
    if r.status_code == 401 and not (
        ctype.startswith("application/json") and r.json().get("error") == "invalid_client"
    ):
        # RFC 9110 §15.5.2. invalid_client without an Authorization header is the project's exception (RFC 6749
        # §5.2 only requires the challenge when the client used the header); see README.md.
        assert r.headers.get("www-authenticate"), describe(r)


def assert_oauth_error(r: httpx.Response, status: int, error: str | tuple[str, ...]) -> dict[str, Any]:
    """A JSON error of the token family: status, code, no-store (RFC 6749 §5.1-5.2)."""
    assert r.status_code == status, describe(r)
    assert r.headers.get("content-type", "").startswith("application/json"), describe(r)
    body = r.json()
    errors = (error,) if isinstance(error, str) else error
    assert body.get("error") in errors, describe(r)
    assert "no-store" in r.headers.get("cache-control", ""), describe(r)
    assert_sane(r)
    return body


def assert_invalid_token(r: httpx.Response) -> None:
    """RFC 6750 §3.1: 401 with ``WWW-Authenticate: Bearer ... error="invalid_token"``."""
    assert r.status_code == 401, describe(r)
    challenge = r.headers.get("www-authenticate", "")
    assert challenge.lower().startswith("bearer"), describe(r)
    assert 'error="invalid_token"' in challenge, describe(r)
