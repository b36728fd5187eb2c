"""Hostile values past the front door: a signed-in browser with valid CSRF tokens and a live interaction.

The route fuzz (test_fuzz_routes.py) mostly meets the first refusal (no session, no CSRF
token). Here every request carries a real session cookie, the page's real token and a
real pending authorization, and only the fields the handler acts on are hostile, so
the code behind the checks runs: ending sessions, revoking apps, changing passwords,
consenting, logging out with hints, exchanging codes and refreshing.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from idp.interaction import SESSION_COOKIE
from tests.oauthkit import make_user, web_client
from tests.pagekit import field, pending
from tests.robustness.kit import ISSUER, SyncSite, assert_sane, fuzz_settings
from tests.robustness.strategies import encode_pairs, value_bytes

FORM = {"content-type": "application/x-www-form-urlencoded", "origin": ISSUER}


def signed_in(s: SyncSite) -> dict[str, Any]:
    c = s.site.c
    user = make_user(c)
    web, secret = web_client(c, first_party=False)
    cookie, _session = c.login_sessions.login(user.id)
    headers = {**FORM, "cookie": f"{SESSION_COOKIE}={cookie}"}
    page = s.request("GET", "/account", headers=headers)
    assert page.status_code == 200, page.status_code
    return {"c": c, "user": user, "web": web, "secret": secret, "headers": headers, "csrf": field(page.text, "csrf")}


def targets(ctx: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(method, path, hostile field names); the csrf token and session are always valid."""
    return [
        ("POST", "/account/sessions/end", ["sid"]),
        ("POST", "/account/apps/revoke", ["client_id"]),
        ("POST", "/account/password", ["current_password", "new_password", "confirm_password"]),
        ("POST", "/account/totp/start", ["name"]),
        ("POST", "/account/totp/confirm", ["factor_id", "code"]),
        ("POST", "/account/recovery/new", ["current_password"]),
        ("POST", "/account/factors/remove", ["factor_id", "current_password"]),
        ("POST", "/login/factor", ["code", "interaction"]),
        ("POST", "/account/sessions/end-all", ["confirm"]),
        ("POST", "/consent", ["decision", "scope", "interaction"]),
        ("GET", "/logout", ["id_token_hint", "client_id", "post_logout_redirect_uri", "state"]),
        ("POST", "/token", ["grant_type", "code", "code_verifier", "refresh_token", "scope", "resource"]),
        ("POST", "/revoke", ["token", "token_type_hint"]),
        ("POST", "/introspect", ["token", "token_type_hint"]),
    ]


def fuzz_signed_in(s: SyncSite, *, ci_examples: int, long: bool) -> None:
    ctx = signed_in(s)
    c, web = ctx["c"], ctx["web"]
    basic = httpx.BasicAuth(web.client_id, ctx["secret"])
    for method, path, names in targets(ctx):
        if not s.site.has(path, method):
            continue

        @fuzz_settings(ci_examples, long=long)
        @given(values=st.lists(st.tuples(st.sampled_from(names), value_bytes), min_size=1, max_size=4))
        def probe(values: list[tuple[str, bytes]]) -> None:
            fixed = [(b"csrf", ctx["csrf"].encode())]
            if path == "/consent":
                fixed.append((b"interaction", pending(c, web).id.encode()))  # type: ignore[arg-type]
            if path == "/token":
                fixed.append((b"grant_type", b"refresh_token"))
            body = encode_pairs([*fixed, *((k.encode(), v) for k, v in values)])
            if method == "GET":
                r = s.request("GET", path + "?" + body.decode(), headers=ctx["headers"])
            elif path in ("/token", "/revoke", "/introspect"):
                r = s.request("POST", path, content=body, headers=FORM, auth=basic)
            else:
                r = s.request("POST", path, content=body, headers=ctx["headers"])
            assert_sane(r)

        probe()
        if path == "/account/sessions/end-all":  # it may have signed us out: sign in again
            ctx.update(signed_in_again(s, ctx))


def signed_in_again(s: SyncSite, ctx: dict[str, Any]) -> dict[str, Any]:
    cookie, _ = ctx["c"].login_sessions.login(ctx["user"].id)
    headers = {**FORM, "cookie": f"{SESSION_COOKIE}={cookie}"}
    page = s.request("GET", "/account", headers=headers)
    return {"headers": headers, "csrf": field(page.text, "csrf")}


def test_signed_in_pages_and_endpoints_survive_hostile_fields(sync_site: SyncSite) -> None:
    fuzz_signed_in(sync_site, ci_examples=8, long=False)


@pytest.mark.slow
@pytest.mark.timeout(7200)
def test_signed_in_long_run(sync_site: SyncSite) -> None:
    fuzz_signed_in(sync_site, ci_examples=0, long=True)
