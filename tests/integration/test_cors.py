"""CORS (Fetch standard): public documents for any origin; client endpoints only for registered origins.

The headers as a browser sees them, preflights included, on both backends. The real browser
runs in tests/browser/test_cors_browser.py.
"""

from __future__ import annotations

import httpx
import pytest

from idp.services import Services
from tests.oauthkit import (
    ISSUER,
    basic,
    exchange,
    get_code,
    make_user,
    native_client,
    service_client,
    sign_in_fast,
    web_client,
)

SPA = "https://spa.example"
SPA_REDIRECT = f"{SPA}/callback"
CLIENT_PATHS = [("/token", "POST"), ("/userinfo", "GET, POST"), ("/revoke", "POST"), ("/introspect", "POST")]


def preflight(origin: str, method: str = "POST", headers: str = "authorization, dpop") -> dict[str, str]:
    return {"origin": origin, "access-control-request-method": method, "access-control-request-headers": headers}


def spa(c: Services, **kw: object):  # type: ignore[no-untyped-def]
    return native_client(c, name="SPA", redirect_uris=[SPA_REDIRECT, "com.example.app:/cb"], **kw)


def no_credentials(r: httpx.Response) -> None:
    assert "access-control-allow-credentials" not in r.headers


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server",
                                  "/jwks.json"])  # fmt: skip
async def test_public_documents_any_origin(client: httpx.AsyncClient, path: str) -> None:
    for headers in ({"origin": "https://anywhere.example"}, {}):
        r = await client.get(path, headers=headers)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
        no_credentials(r)
    etag = r.headers["etag"]
    r = await client.get(path, headers={"origin": "https://x.example", "if-none-match": etag})
    assert r.status_code == 304 and r.headers["access-control-allow-origin"] == "*"
    r = await client.options(path, headers=preflight("https://anywhere.example", "GET"))
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == "*"
    assert "GET" in r.headers["access-control-allow-methods"]
    no_credentials(r)


@pytest.mark.parametrize(("path", "methods"), CLIENT_PATHS)
async def test_preflight_from_a_public_clients_redirect_origin(
    client: httpx.AsyncClient, container: Services, path: str, methods: str
) -> None:
    spa(container)
    r = await client.options(path, headers=preflight(SPA, methods.split(",")[0]))
    assert r.status_code == 204, r.text
    assert r.headers["access-control-allow-origin"] == SPA
    assert r.headers["access-control-allow-methods"] == methods
    assert {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")} == {
        "authorization", "content-type", "dpop"
    }  # fmt: skip
    assert "origin" in r.headers["vary"].lower()
    assert int(r.headers["access-control-max-age"]) > 0
    no_credentials(r)
    assert "content-length" not in r.headers and r.content == b""  # RFC 9110 §8.6


@pytest.mark.parametrize(("path", "methods"), CLIENT_PATHS)
async def test_other_origins_are_refused(
    client: httpx.AsyncClient, container: Services, path: str, methods: str
) -> None:
    spa(container)
    web_client(container, redirect_uris=["https://confidential.example/cb"])  # not a browser client
    for origin in ("https://evil.example", "https://confidential.example", "null", "https://spa.example:8443"):
        r = await client.options(path, headers=preflight(origin))
        assert r.status_code == 403 and "access-control-allow-origin" not in r.headers, origin
        assert r.headers["vary"] == "Origin"
        r = await client.post(path, headers={"origin": origin}, data={"token": "x"})
        assert r.status_code == 403 and r.json()["error"] == "invalid_request", origin
        assert "access-control-allow-origin" not in r.headers


async def test_the_browser_code_flow_reads_every_answer(client: httpx.AsyncClient, container: Services) -> None:
    app = spa(container)
    user = make_user(container)
    sign_in_fast(container, client, user)
    code, verifier, _ = await get_code(client, app, redirect_uri=SPA_REDIRECT, scope="openid profile offline_access")
    r = await client.post(
        "/token",
        headers={"origin": SPA},
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": SPA_REDIRECT,
              "client_id": app.client_id, "code_verifier": verifier},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == SPA and r.headers["vary"] == "Origin"
    assert "dpop-nonce" in r.headers["access-control-expose-headers"].lower()
    no_credentials(r)
    tokens = r.json()
    r = await client.get("/userinfo", headers={"origin": SPA, "authorization": f"Bearer {tokens['access_token']}"})
    assert r.status_code == 200 and r.json()["sub"] == user.id
    assert r.headers["access-control-allow-origin"] == SPA
    r = await client.get("/userinfo", headers={"origin": SPA})  # errors are readable too (and their challenge)
    assert r.status_code == 401 and r.headers["access-control-allow-origin"] == SPA
    assert "www-authenticate" in r.headers["access-control-expose-headers"].lower()
    r = await client.post(
        "/revoke", headers={"origin": SPA}, data={"token": tokens["refresh_token"], "client_id": app.client_id}
    )
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == SPA


async def test_a_refused_origin_does_not_spend_the_code(client: httpx.AsyncClient, container: Services) -> None:
    app = spa(container)
    sign_in_fast(container, client, make_user(container))
    code, verifier, _ = await get_code(client, app, redirect_uri=SPA_REDIRECT)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": SPA_REDIRECT,
            "client_id": app.client_id, "code_verifier": verifier}  # fmt: skip
    r = await client.post("/token", headers={"origin": "https://evil.example"}, data=form)
    assert r.status_code == 403
    r = await client.post("/token", headers={"origin": SPA}, data=form)
    assert r.status_code == 200, r.text  # the code was still unused


async def test_server_side_calls_are_unchanged_but_vary(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    sign_in_fast(container, client, make_user(container))
    code, verifier, _ = await get_code(client, web)
    r = await exchange(client, web, secret, code, verifier)  # no Origin: not a browser
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    assert r.headers["vary"] == "Origin"  # the answer to a browser would differ
    r = await client.options("/token")  # not a preflight: the router's answer
    assert r.status_code == 405
    r = await client.get("/authorize", headers={"origin": SPA})  # not a CORS endpoint
    assert "access-control-allow-origin" not in r.headers


async def test_the_issuer_itself_and_operator_added_origins(client: httpx.AsyncClient, container: Services) -> None:
    r = await client.options("/token", headers=preflight(ISSUER))
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == ISSUER
    web, _ = web_client(container, allowed_cors_origins=["https://Admin.Example:443", "http://127.0.0.1:5173"])
    assert web.allowed_cors_origins == ["https://admin.example", "http://127.0.0.1:5173"]  # as browsers send them
    for origin in web.allowed_cors_origins:
        r = await client.options("/introspect", headers=preflight(origin))
        assert r.status_code == 204 and r.headers["access-control-allow-origin"] == origin


async def test_origins_follow_client_changes_at_once(client: httpx.AsyncClient, container: Services) -> None:
    """No clock moves: a change is visible on the next request, not after a cache lifetime."""
    web, _ = web_client(container)
    other = "https://console.example"
    assert (await client.options("/token", headers=preflight(other))).status_code == 403
    container.clients.update(web.client_id, allowed_cors_origins=[other])
    assert (await client.options("/token", headers=preflight(other))).status_code == 204
    container.client_admin.set_disabled(web.client_id, True, actor="test")
    assert (await client.options("/token", headers=preflight(other))).status_code == 403
    container.client_admin.set_disabled(web.client_id, False, actor="test")
    assert (await client.options("/token", headers=preflight(other))).status_code == 204
    container.clients.delete(web.client_id)
    assert (await client.options("/token", headers=preflight(other))).status_code == 403
    app = spa(container)
    assert (await client.options("/token", headers=preflight(SPA))).status_code == 204
    container.clients.update(app.client_id, redirect_uris=["https://moved.example/cb"])
    assert (await client.options("/token", headers=preflight(SPA))).status_code == 403
    assert (await client.options("/token", headers=preflight("https://moved.example"))).status_code == 204


async def test_a_loopback_redirect_adds_no_origin(client: httpx.AsyncClient, container: Services) -> None:
    """Any program on any machine can serve http://127.0.0.1: a native app's loopback redirect (the demo's
    mobile app has one) names no page of the app's; such an origin counts only when added to the client."""
    app = native_client(container, redirect_uris=["http://127.0.0.1/callback", "http://[::1]:8080/cb",
                                                  "com.example.demo:/callback"])  # fmt: skip
    sign_in_fast(container, client, make_user(container))
    code, verifier, _ = await get_code(client, app)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": app.redirect_uris[0],
            "client_id": app.client_id, "code_verifier": verifier}  # fmt: skip
    for origin in ("http://127.0.0.1", "http://[::1]:8080"):
        assert (await client.options("/token", headers=preflight(origin))).status_code == 403, origin
        r = await client.post("/token", headers={"origin": origin}, data=form)
        assert r.status_code == 403 and r.json()["error"] == "invalid_request", origin
    assert (await client.post("/token", data=form)).status_code == 200  # the app itself sends no Origin
    container.clients.update(app.client_id, allowed_cors_origins=["http://127.0.0.1:5173"])  # a SPA in development
    assert (await client.options("/token", headers=preflight("http://127.0.0.1:5173"))).status_code == 204
    assert (await client.options("/token", headers=preflight("http://127.0.0.1"))).status_code == 403


OTHER = "https://other.example"


async def test_one_clients_origin_cannot_call_for_another(client: httpx.AsyncClient, container: Services) -> None:
    """SPA's origin passes the preflight (the set is everyone's) but not the endpoints, for any other client."""
    spa(container)
    other = native_client(container, name="Other", redirect_uris=[f"{OTHER}/cb"])
    web, secret = web_client(container, allowed_cors_origins=["https://console.example"])
    sign_in_fast(container, client, make_user(container))
    code, verifier, _ = await get_code(client, other, redirect_uri=f"{OTHER}/cb", scope="openid offline_access")
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": f"{OTHER}/cb",
            "client_id": other.client_id, "code_verifier": verifier}  # fmt: skip
    assert (await client.options("/token", headers=preflight(SPA))).status_code == 204  # preflights: the set
    r = await client.post("/token", headers={"origin": SPA}, data=form)
    assert r.status_code == 403 and r.json()["error"] == "invalid_request", r.text
    assert r.json()["error_description"] == "Cross-origin requests from this origin are not allowed."
    r = await client.post("/token", headers={"origin": OTHER}, data=form)
    assert r.status_code == 200, r.text  # the refused attempt did not spend the code
    assert r.headers["access-control-allow-origin"] == OTHER
    tokens = r.json()
    refresh_form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": other.client_id,
    }
    assert (await client.post("/token", headers={"origin": SPA}, data=refresh_form)).status_code == 403
    revoke_form = {"token": tokens["refresh_token"], "client_id": other.client_id}
    assert (await client.post("/revoke", headers={"origin": SPA}, data=revoke_form)).status_code == 403
    # A confidential client: only the origins added to it (a public client's origin is not one of them).
    for origin in (SPA, OTHER):
        r = await client.post("/introspect", headers={"origin": origin, **basic(web.client_id, secret)},
                              data={"token": tokens["access_token"]})  # fmt: skip
        assert r.status_code == 403 and r.json()["error"] == "invalid_request", origin
    r = await client.post("/introspect", headers={"origin": "https://console.example", **basic(web.client_id, secret)},
                          data={"token": tokens["refresh_token"]})  # fmt: skip
    assert r.status_code == 200 and r.json() == {"active": False}  # another client's refresh token
    r = await client.post("/token", headers={"origin": OTHER}, data=refresh_form)
    assert r.status_code == 200, r.text  # neither the refused refresh nor the refused revocation spent it
    r = await client.post("/token", headers={"origin": ISSUER}, data=refresh_form | {
        "refresh_token": r.json()["refresh_token"]})  # fmt: skip
    assert r.status_code == 200, r.text  # the issuer's own pages may call for any client


async def test_userinfo_follows_the_tokens_client(client: httpx.AsyncClient, container: Services) -> None:
    spa(container)
    other = native_client(container, name="Other", redirect_uris=[f"{OTHER}/cb"])
    sign_in_fast(container, client, make_user(container))
    code, verifier, _ = await get_code(client, other, redirect_uri=f"{OTHER}/cb")
    r = await exchange(client, other, None, code, verifier, redirect_uri=f"{OTHER}/cb")
    assert r.status_code == 200, r.text
    bearer = {"authorization": f"Bearer {r.json()['access_token']}"}
    r = await client.get("/userinfo", headers={"origin": SPA, **bearer})
    assert r.status_code == 403 and r.json()["error"] == "invalid_request" and "sub" not in r.json()
    assert "www-authenticate" not in r.headers  # a CORS refusal, not a token error
    r = await client.post("/userinfo", headers={"origin": SPA, **bearer})
    assert r.status_code == 403
    for headers in ({"origin": OTHER}, {}):
        r = await client.get("/userinfo", headers={**headers, **bearer})
        assert r.status_code == 200 and "sub" in r.json(), headers


async def test_a_cached_service_client_is_checked_too(client: httpx.AsyncClient, container: Services) -> None:
    """client_credentials from the hot cache runs without I/O: the origin is still the client's to decide."""
    spa(container)
    svc, secret = service_client(container, allowed_cors_origins=["https://ops.example"])
    form = {"grant_type": "client_credentials"}
    for _ in range(2):  # the second call takes the inline path
        assert (await client.post("/token", headers=basic(svc.client_id, secret), data=form)).status_code == 200
        r = await client.post("/token", headers={"origin": SPA, **basic(svc.client_id, secret)}, data=form)
        assert r.status_code == 403 and r.json()["error"] == "invalid_request"
        r = await client.post("/token", headers={"origin": "https://ops.example", **basic(svc.client_id, secret)},
                              data=form)  # fmt: skip
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://ops.example"
