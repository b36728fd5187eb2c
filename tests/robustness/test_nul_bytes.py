"""NUL reaches PostgreSQL nowhere: PostgreSQL text cannot hold it, and a query with one is a DataError (a 500)."""

from __future__ import annotations

import base64

from tests.pagekit import SAME_ORIGIN, field
from tests.robustness.kit import Site, assert_sane, describe


async def test_nul_in_identifiers_is_refused_not_a_500(site: Site) -> None:
    http = site.http
    basic = "Basic " + base64.b64encode(b"\x00:secret").decode()
    basic_q = "Basic " + base64.b64encode(b"%00:secret").decode()
    for path in ("/token", "/revoke", "/introspect"):
        for auth in (basic, basic_q):
            r = await http.post(path, data={"grant_type": "client_credentials", "token": "x"},
                                headers={"authorization": auth})  # fmt: skip
            assert_sane(r)
    urls = [
        "/logout?client_id=%00",
        "/logout?post_logout_redirect_uri=%00&client_id=a%00",
        "/logout?id_token_hint=%00",
        "/login?interaction=%00",
        "/consent?interaction=%00",
        "/authorize/resume?interaction=%00",
        "/static/%00",
        "/admin/clients/%00",
    ]
    for url in urls:
        r = await http.get(url)
        assert r.status_code < 500, describe(r)
    form = await http.get("/login")
    r = await http.post("/login", data={"csrf": field(form.text, "csrf"), "username": "al\x00ice", "password": "x"},
                        headers=SAME_ORIGIN)  # fmt: skip
    assert r.status_code < 500, describe(r)
