"""The OpenAPI description of the public endpoints stays true, and the app honours it under schemathesis.

* Every route of the app is described (public ones in ``idp/web/openapi_public.json``, the
  admin API in ``idp/web/admin/openapi.json``) and every described operation exists.
* schemathesis generates requests from the document (valid and invalid ones) and checks the
  answers: never a 5xx, only documented status codes and content types, bodies that match
  their schemas. CI runs a small derandomised subset in-process; ``make fuzz`` the long run.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks as oa_checks

from idp.web.admin.routes import load_spec as admin_spec
from idp.web.openapi import load_spec
from tests.robustness.kit import ISSUER, Site, SyncSite, assert_sane, fuzz_settings

METHODS = {"get", "post", "put", "patch", "delete"}
# An SSE stream (for a reader with credentials): checked in test_sigterm.py and the deny-list tests.
NEVER_ENDS = {("GET", "/deny-list/events"), ("POST", "/deny-list/events")}
CHECKS = [
    schemathesis.checks.not_a_server_error,
    oa_checks.status_code_conformance,
    oa_checks.content_type_conformance,
    oa_checks.response_schema_conformance,
]


def operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m.upper(), p) for p, item in spec["paths"].items() for m in item if m in METHODS}


def app_operations(site: Site) -> set[tuple[str, str]]:
    return {(m, p) for p, methods in site.paths() for m in methods}


def test_every_route_is_described_and_every_description_is_a_route(site: Site) -> None:
    public, admin = operations(load_spec()), operations(admin_spec())
    routes = app_operations(site)
    assert not public & admin, "an operation is described twice"
    assert routes - (public | admin) == set(), "routes missing from the OpenAPI documents"
    assert public - routes == set(), "described in openapi_public.json but not served"
    assert admin - routes == set(), "described in admin/openapi.json but not served"
    assert all(not p.startswith("/admin") for _, p in public)


async def test_served_document_names_this_issuer(site: Site) -> None:
    r = await site.http.get("/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["openapi"].startswith("3.1") and doc["servers"] == [{"url": site.c.settings.issuer}]
    assert doc["paths"].keys() == load_spec()["paths"].keys()


def _send(s: SyncSite, case: Any) -> httpx.Response:
    kw = case.as_transport_kwargs(base_url=ISSUER)
    headers = {k: v for k, v in (kw.pop("headers", None) or {}).items() if k.lower() != "connection"}
    cookies = kw.pop("cookies", None) or {}
    if cookies:
        headers["cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    if "json" in kw:
        kw["content"] = json.dumps(kw.pop("json")).encode()
        headers.setdefault("content-type", "application/json")
    kw.pop("files", None)
    return s.request(kw.pop("method"), kw.pop("url"), headers=headers, **kw)  # type: ignore[no-any-return]


def run_schemathesis(s: SyncSite, *, ci_examples: int, long: bool) -> None:
    spec = {**load_spec(), "servers": [{"url": ISSUER}]}
    schema = schemathesis.openapi.from_dict(spec)
    for result in schema.get_all_operations():
        op = result.ok()
        if (op.method.upper(), op.path) in NEVER_ENDS:
            continue

        strategy = st.one_of(op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE))

        @fuzz_settings(ci_examples, long=long)
        @given(case=strategy)
        def probe(case: Any) -> None:
            response = _send(s, case)
            assert_sane(response)
            case.validate_response(response, checks=CHECKS)

        probe()


def test_schemathesis_ci_subset(sync_site: SyncSite) -> None:
    run_schemathesis(sync_site, ci_examples=6, long=False)


@pytest.mark.slow
@pytest.mark.timeout(7200)
def test_schemathesis_long_run(sync_site: SyncSite) -> None:
    run_schemathesis(sync_site, ci_examples=0, long=True)
