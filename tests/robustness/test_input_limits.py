"""Bounded, strictly parsed input on every endpoint.

Decisions (also in README.md):

* Bodies over 64 KiB: 413 with an RFC 6749 §5.2 JSON body, before the app reads them
  (``Content-Length`` or chunked).
* The token family (/token, /revoke, /introspect) takes only
  ``application/x-www-form-urlencoded``: anything else is 400 ``invalid_request`` (RFC 6749
  §3.2 speaks of that one media type; 400 keeps the RFC error shape, where a 415 would not).
* Repeated parameters: ``invalid_request`` (RFC 6749 §3.1/§3.2); /authorize shows its error
  page when ``client_id``/``redirect_uri`` repeat, else redirects the error.
* Length: any OAuth parameter over 8 KiB is ``invalid_request`` (idp.oauth.forms); narrower
  limits: ``state`` 2 KiB, ``nonce`` 512 B, ``scope`` 50 tokens of <= 128 chars, codes 256,
  refresh tokens 512, ``code_verifier`` 43-128 (RFC 7636 §4.1). Hosted-page fields: 4 KiB or less.
* Non-UTF-8 and NUL: ``invalid_request`` (or the 400 page), never a 500.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx

from tests.oauthkit import auth_params, make_user, native_client, pkce_pair, query, sign_in_fast, web_client
from tests.robustness.kit import Site, assert_oauth_error, assert_sane, describe, need

LIMIT = 64 * 1024
TOKEN_FAMILY = ("/token", "/revoke", "/introspect")


def post_routes(site: Site) -> list[str]:
    return sorted({p for p, m in site.paths() if "POST" in m and "{" not in p})


async def test_every_post_route_refuses_bodies_over_64_kib(site: Site) -> None:
    paths = post_routes(site)
    assert "/login" in paths
    for path in paths:
        r = await site.http.post(path, content=b"a=" + b"x" * LIMIT, headers={"content-type": "text/plain"})
        assert r.status_code == 413, describe(r)
        assert r.json()["error"] == "invalid_request"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
            for _ in range(5):
                yield b"x" * (LIMIT // 4)

        r = await site.http.post(path, content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"})
        # Read: 413. Refused before reading (the admin API authenticates first): that refusal.
        assert r.status_code == 413 or r.status_code in (401, 403), describe(r)
        assert_sane(r)
        ok = await site.http.post(path, content=b"a=" + b"x" * (LIMIT - 10))  # just under: the route decides
        assert ok.status_code != 413 and ok.status_code < 500, describe(ok)


async def test_token_family_refuses_other_content_types(site: Site) -> None:
    for path in TOKEN_FAMILY:
        if not site.has(path, "POST"):
            continue
        for ctype, body in (
            ("application/json", b'{"grant_type": "client_credentials", "token": "x"}'),
            ("text/plain", b"grant_type=client_credentials&token=x"),
            (
                "multipart/form-data; boundary=b",
                b'--b\r\nContent-Disposition: form-data; name="token"\r\n\r\nx\r\n--b--',
            ),
            ("", b"grant_type=client_credentials&token=x"),
        ):
            headers = {"content-type": ctype} if ctype else {}
            r = await site.http.post(path, content=body, headers=headers, auth=("someone", "secret"))
            assert r.status_code in (400, 401), describe(r)  # 401 when client auth is judged first
            assert_sane(r)
            if r.status_code == 400:
                assert r.json()["error"] == "invalid_request", describe(r)


async def test_token_family_refuses_repeated_and_malformed_parameters(site: Site) -> None:
    need(site, "/token", "POST")
    form = {"content-type": "application/x-www-form-urlencoded"}
    bodies = [
        b"grant_type=client_credentials&grant_type=client_credentials",  # RFC 6749 §3.2: repeated
        b"grant_type=client_credentials&scope=a&scope=b",
        b"grant_type=%ff%fe",  # not UTF-8
        b"grant_type=client_credentials&scope=a%00b",  # NUL
        b"grant_type=client_credentials&scope=" + b"a" * 9000,  # over 8 KiB
        b"grant_type=authorization_code&code=x&code_verifier=" + b"a" * 9000,
        b"&".join(b"p%d=1" % i for i in range(100)),  # too many parameters
    ]
    for path in TOKEN_FAMILY:
        if not site.has(path, "POST"):
            continue
        for body in bodies:
            r = await site.http.post(path, content=body, headers=form, auth=("someone", "secret"))
            if r.status_code == 401:  # the endpoint authenticates the client first
                assert_oauth_error(r, 401, "invalid_client")
            else:
                assert_oauth_error(r, 400, "invalid_request")


async def test_authorize_bounds_and_repeats(container: object, site: Site) -> None:
    need(site, "/authorize")
    c = container
    web, _ = web_client(c)  # type: ignore[arg-type]
    sign_in_fast(c, site.http, make_user(c))  # type: ignore[arg-type]
    verifier, challenge = pkce_pair()
    base = auth_params(web, challenge)

    async def authorize(**over: str) -> httpx.Response:
        return await site.http.get("/authorize", params={**base, **over})

    ok = await authorize()
    assert ok.status_code == 302 and "code" in query(ok.headers["location"]), describe(ok)
    for over, error in (
        ({"state": "s" * 2049}, "invalid_request"),
        ({"nonce": "n" * 513}, "invalid_request"),
        ({"scope": "openid " + "x" * 129}, "invalid_scope"),
        ({"scope": " ".join(f"s{i}" for i in range(51))}, "invalid_scope"),
        ({"code_challenge": "c" * 200}, "invalid_request"),
        ({"max_age": "9" * 5000}, "invalid_request"),
        ({"scope": "openid\x01profile"}, "invalid_scope"),
    ):
        r = await authorize(**over)
        assert r.status_code == 302, describe(r)
        q = query(r.headers["location"])
        assert q.get("error") == error and q.get("iss") == c.settings.issuer, (over.keys(), q)  # type: ignore[attr-defined]
        assert len(r.headers["location"]) < 4096 + 2 * 2049
    # A parameter over 8 KiB, bytes that are not UTF-8, a repeated client_id: our page, no redirect.
    for raw in (
        "&login_hint=" + "h" * 9000,
        "&state=%ff%fe",
        "&client_id=" + quote(web.client_id),
    ):
        qs = "&".join(f"{k}={quote(v)}" for k, v in base.items()) + raw
        r = await site.http.get("/authorize?" + qs)
        assert r.status_code == 400 and "location" not in r.headers, describe(r)
        assert r.headers["content-type"].startswith("text/html")
    # A repeated ordinary parameter is redirected as invalid_request (RFC 6749 §3.1).
    qs = "&".join(f"{k}={quote(v)}" for k, v in base.items()) + "&scope=openid"
    r = await site.http.get("/authorize?" + qs)
    assert r.status_code == 302 and query(r.headers["location"])["error"] == "invalid_request", describe(r)


async def test_hosted_pages_refuse_repeats_oversize_and_bad_bytes(site: Site) -> None:
    form = {"content-type": "application/x-www-form-urlencoded", "origin": "https://idp.test"}
    for path in ("/login", "/consent", "/account/password"):
        if not site.has(path, "POST"):
            continue
        for body in (
            b"username=a&username=b&password=x&csrf=y",
            b"username=" + b"u" * 5000 + b"&password=x&csrf=y",
            b"username=%ff%fe&password=%00&csrf=%c3",
            b"\xff\xfe\x00=\x01",
        ):
            r = await site.http.post(path, content=body, headers=form)
            assert 400 <= r.status_code < 500 or (r.status_code == 303 and path != "/login"), describe(r)
            assert_sane(r)
    for params in ("interaction=a&interaction=b", "interaction=" + "i" * 5000, "next=%ff", "next=" + "/x" * 3000):
        r = await site.http.get("/login?" + params)
        assert r.status_code in (200, 303, 400), describe(r)
        assert_sane(r)


HEADERLESS = ["\t", "\r\n", "\n", "\x7f", "\u00e9", "\u20ac", "\u2028", " "]  # no header may carry these raw


async def test_redirect_targets_that_no_header_can_carry_get_a_clear_400(container: object, site: Site) -> None:
    """A redirect target is checked on its raw string: a character urlsplit drops, a port it never reads,
    DEL or non-ASCII never reaches Location (a 500 or a dropped connection); the page says 400."""
    need(site, "/authorize")
    c = container
    native = native_client(c)  # type: ignore[arg-type]
    sign_in_fast(c, site.http, make_user(c))  # type: ignore[arg-type]
    _, challenge = pkce_pair()
    targets = [f"http://127.0.0.1:5000/call{ch}back" for ch in HEADERLESS]
    targets += [f"http://127.0.0.1:{port}/callback" for port in ("99999", "0x50", "12ab", "0", "")]
    targets += ["http://127.0.0.1:5000/callback#", "http://:pw@127.0.0.1:5000/callback"]
    for uri in targets:
        r = await site.http.get("/authorize", params=auth_params(native, challenge, redirect_uri=uri))
        assert r.status_code == 400 and "location" not in r.headers, describe(r)  # our page, never a redirect
        assert r.headers["content-type"].startswith("text/html"), describe(r)
    for ch in HEADERLESS:  # login next=: falls back to the account page
        r = await site.http.get("/login", params={"next": f"/account{ch}x"})
        assert r.status_code == 303 and r.headers["location"] == "/account", describe(r)
    if site.has("/logout"):  # a post_logout_redirect_uri that does not match exactly is not followed
        rp, _ = web_client(c, post_logout_redirect_uris=["https://rp.example/bye"])  # type: ignore[arg-type]
        for ch in HEADERLESS:
            params = {"client_id": rp.client_id, "post_logout_redirect_uri": f"https://rp.example/bye{ch}"}
            r = await site.http.get("/logout", params=params)
            assert_sane(r)
            assert ch not in r.headers.get("location", ""), describe(r)
            assert f"bye{ch}" not in r.text, describe(r)


async def test_an_oversized_token_is_an_invalid_token_not_a_bad_request(container: object, site: Site) -> None:
    """RFC 7009 §2.2: 200; RFC 7662 §2.2: inactive; RFC 6750 §3.1: 401 invalid_token. A resource server that
    introspects must not be turned into a 503 machine by long junk in its callers' Authorization headers."""
    need(site, "/introspect", "POST")
    c = container
    caller, secret = c.clients.create(name="gateway", kind="service", scope="api")  # type: ignore[attr-defined]
    auth = (caller.client_id, secret)
    for size in (8193, 60_000):
        junk = "A" * size
        r = await site.http.post("/introspect", data={"token": junk}, auth=auth)
        assert r.status_code == 200 and r.json() == {"active": False}, describe(r)
        r = await site.http.post("/revoke", data={"token": junk}, auth=auth)
        assert r.status_code == 200, describe(r)
        r = await site.http.post("/userinfo", data={"access_token": junk})
        assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"], describe(r)
        r = await site.http.get("/userinfo", headers={"authorization": "Bearer " + junk})
        assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"], describe(r)


async def test_echoed_parameter_names_cannot_break_the_error_shape(site: Site) -> None:
    """Found by schemathesis: a repeated parameter named with a non-Latin-1 character was echoed into
    WWW-Authenticate (a 500), and one named ``'`` put a quote into error_description (RFC 6749 §5.2 charset)."""
    form = {"content-type": "application/x-www-form-urlencoded"}
    for name in ("%C4%80", "%27", "%22", "%5C", "%E2%80%AE"):
        body = f"{name}=a&{name}=b".encode()
        for path in ("/userinfo", "/token", "/revoke", "/introspect"):
            if site.has(path, "POST"):
                r = await site.http.post(path, content=body, headers=form)
                assert 400 <= r.status_code < 500, describe(r)
                assert_sane(r)
        r = await site.http.get(f"/authorize?{name}=a&{name}=b")
        assert r.status_code == 400, describe(r)
