"""Security headers on every hosted page and every error page (REQUIREMENTS 11, 13, 58)."""

from __future__ import annotations

import re

import pytest

from tests.pagekit import (
    HTML_SECURITY_HEADERS,
    PASSWORD,
    SAME_ORIGIN,
    make_client,
    make_user,
    pending,
    sign_in,
)


def check(response):
    assert response.headers["content-type"].startswith("text/html"), response.headers["content-type"]
    for name, expected in HTML_SECURITY_HEADERS.items():
        assert expected in response.headers.get(name, ""), (name, response.request.url)
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    # CSP without inline code: a script only from our own static files (the passkey ceremonies), never inline
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", response.text, re.S)
    assert all(not body.strip() for body in scripts)
    assert response.text.count("<script") == len(
        re.findall(r'<script src="/static/[a-z]+\.js" defer></script>', response.text)
    )
    assert "style=" not in response.text


async def test_every_page_sends_the_security_headers(client, container):
    alice = make_user(container)
    rp = make_client(container)
    p = pending(container, rp)
    pages = [await client.get("/login"), await client.get("/login", params={"interaction": p.id})]
    pages.append(await sign_in(client, password="wrong"))  # error state of the form
    pages.append(await client.post("/login", data={"username": "alice", "password": PASSWORD}, headers=SAME_ORIGIN))
    await sign_in(client, interaction=p.id)
    pages.append(await client.get("/consent", params={"interaction": p.id}))
    pages.append(await client.get("/account"))
    pages.append(await client.post("/account/password", data={"csrf": "x"}, headers=SAME_ORIGIN))  # 400 page
    pages.append(await client.get("/logout"))  # confirmation
    pages.append(await client.get("/logout/done"))
    pages.append(await client.get("/login", params={"interaction": "expired"}))  # error page
    pages.append(await client.get("/consent"))
    container.consents.grant(alice.id, rp.client_id, ["openid"])
    pages.append(await client.get("/account"))
    for _ in range(5):
        last = await sign_in(client, password="wrong", switch=True)
    pages.append(last)
    assert last.status_code == 429
    for response in pages:
        check(response)


async def test_redirects_carry_them_too(client, container):
    make_user(container)
    r = await sign_in(client)
    assert r.status_code == 303
    for name, expected in HTML_SECURITY_HEADERS.items():
        if name != "content-type":
            assert expected in r.headers.get(name, "")


@pytest.mark.parametrize("path", ["/static/idp.css", "/static/logo.svg"])
async def test_static_assets_are_served(client, path):
    r = await client.get(path)
    assert r.status_code == 200
    assert r.headers["x-content-type-options"] == "nosniff"


async def test_private_use_scheme_is_added_to_form_action_only_for_its_request(client, container):
    make_user(container)
    native, _ = container.clients.create(
        name="App", kind="native", redirect_uris=["com.example.app:/cb", "http://127.0.0.1/cb"], first_party=True
    )
    p = container.interactions.create(
        native.client_id, {"redirect_uri": "com.example.app:/cb"}, ["openid"], ip="127.0.0.1"
    )
    csp = (await client.get("/login", params={"interaction": p.id})).headers["content-security-policy"]
    assert "form-action 'self' http: https: com.example.app:;" in csp
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    q = container.interactions.create(
        native.client_id, {"redirect_uri": "http://127.0.0.1/cb"}, ["openid"], ip="127.0.0.1"
    )
    csp = (await client.get("/login", params={"interaction": q.id})).headers["content-security-policy"]
    assert "com.example" not in csp
    assert "com.example" not in (await client.get("/login")).headers["content-security-policy"]


async def test_hostile_input_never_500s(client, container):
    """Malformed parameters get a 400 page (or the normal answer), never a 500, on both databases."""
    make_user(container)
    nasty = [
        "\x00",
        "a\x00b",
        "%",
        "\ud800".encode("utf-8", "surrogatepass").decode("latin-1"),
        "€" * 3000,
        "' OR 1=1 --",
    ]
    for value in nasty:
        for path, name in [("/login", "interaction"), ("/login", "next"), ("/consent", "interaction"),
                           ("/logout", "client_id"), ("/logout", "id_token_hint"), ("/logout", "state"),
                           ("/logout", "post_logout_redirect_uri"), ("/account", "done")]:  # fmt: skip
            r = await client.get(path, params={name: value})
            assert r.status_code < 500, (path, name, value)
        for path in ["/login", "/consent", "/logout", "/account/password", "/account/sessions/end"]:
            data = {"username": value, "password": value, "csrf": value, "interaction": value, "client_id": value,
                    "sid": value, "confirm": value, "decision": value}  # fmt: skip
            r = await client.post(path, data=data, headers=SAME_ORIGIN)
            assert r.status_code < 500, (path, value)
    r = await client.post(
        "/login", content=b"\xff\xfe=\x00", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code < 500
    r = await client.post("/login", content=b"--x\r\n", headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code < 500
