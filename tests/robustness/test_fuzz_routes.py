"""Every route of the app, under hostile requests: never a 5xx, every JSON error in its RFC shape.

The routes are read from the app itself, so an endpoint that lands later is fuzzed
without touching this file. Hostile means: random and repeated parameters, non-UTF-8
and control characters, oversized values, wrong content types, junk credentials,
cookies and conditional headers (see strategies.py).
"""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given

from tests.robustness.kit import ISSUER, SyncSite, assert_sane, fuzz_settings
from tests.robustness.strategies import Hostile, hostile_request

# Never-ending by design (SSE); fuzzed separately with finite requests in test_fuzz_endpoints.py.
STREAMS = {"/deny-list/events"}


def send(s: SyncSite, h: Hostile) -> httpx.Response:
    url = httpx.URL(ISSUER + h.path, query=h.query)
    return s.request(h.method, url, headers=h.headers, content=h.body or None)


def fuzz_every_route(s: SyncSite, *, ci_examples: int, long: bool) -> None:
    targets = [(p, m) for p, methods in s.site.paths() if p not in STREAMS for m in sorted(methods)]
    assert len(targets) >= 10

    for path, method in targets:

        @fuzz_settings(ci_examples, long=long)
        @given(h=hostile_request(method, path))
        def probe(h: Hostile) -> None:
            assert_sane(send(s, h))

        probe()


def test_no_route_answers_5xx_to_hostile_input(sync_site: SyncSite) -> None:
    fuzz_every_route(sync_site, ci_examples=8, long=False)


@pytest.mark.slow
@pytest.mark.timeout(7200)
def test_no_route_answers_5xx_long_run(sync_site: SyncSite) -> None:
    fuzz_every_route(sync_site, ci_examples=0, long=True)


def test_unknown_paths_and_methods_are_plain_4xx(sync_site: SyncSite) -> None:
    site = sync_site.site
    for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"):
        for path in ("/nope", "/.well-known/nope", "/%00", "/%ff%fe", "/..%2f..%2fetc/passwd", "/" + "a" * 5000):
            r = sync_site.request(method, path)
            assert 400 <= r.status_code < 500, (method, path, r.status_code)
    allowed: dict[str, set[str]] = {}
    for path, methods in site.paths():
        allowed.setdefault(path, set()).update(methods)
    for path, methods in allowed.items():
        if "{" in path or path in STREAMS:
            continue
        for method in {"GET", "POST", "PUT", "DELETE"} - methods:
            r = sync_site.request(method, path)
            assert r.status_code in (404, 405), (method, path, r.status_code)
