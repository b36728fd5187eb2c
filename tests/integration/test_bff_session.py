"""The BFF signs a person in at the in-process idp (hosted login), keeps the tokens server-side and shows the
SPA only who signed in; logout (RP-initiated) and back-channel logout end the BFF's session. Both backends;
the BFF's own store is in-process, SQL or Redis as the backend goes."""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from idp.bff.session import BffSession
from idp.services import Services
from tests.integration import bff_support
from tests.integration.bff_support import CALLBACK, ORIGIN, bff_rig, browse, sign_in
from tests.oauthkit import ISSUER, make_user

store_url = bff_support.store_url  # every BFF store beside each backend


def cookie_headers(r: Any) -> list[str]:
    return r.headers.get_list("set-cookie")


def no_tokens_in(r: Any, session: BffSession) -> None:
    """Nothing the browser receives carries a token."""
    seen = r.text + "\n".join(f"{k}: {v}" for k, v in r.headers.items())
    for token in (session.tokens.access_token, session.tokens.refresh_token, session.tokens.id_token):
        if token:
            assert token not in seen
            assert token[-40:] not in seen


async def test_sign_in_user_and_cookie(app: Any, container: Services, store_url: str) -> None:
    alice = make_user(container)
    async with bff_rig(app, container, store_url=store_url) as rig:
        r = await rig.browser.get("/bff/user")
        assert r.status_code == 401 and r.json()["error"] == "unauthenticated"
        assert r.headers["cache-control"] == "no-store"

        login = await rig.browser.get("/bff/login", params={"returnTo": "/orders?x=1"})
        assert login.status_code == 302
        target = urlsplit(login.headers["location"])
        q = parse_qs(target.query)
        assert f"{target.scheme}://{target.netloc}{target.path}" == f"{ISSUER}/authorize"
        assert q["code_challenge_method"] == ["S256"] and q["nonce"][0] and q["state"][0]
        assert q["redirect_uri"] == [f"{ORIGIN}/bff/callback"] and "openid" in q["scope"][0].split()
        (login_cookie,) = cookie_headers(login)
        assert login_cookie.startswith("__Host-bff-login=")
        assert q["state"][0] not in login_cookie and q["nonce"][0] not in login_cookie  # an id, nothing more

        r = await sign_in(rig, alice)
        assert r.status_code == 303 and r.headers["location"] == "/orders?x=1"
        cookies = cookie_headers(r)
        session_cookie = next(c for c in cookies if c.startswith("__Host-bff="))
        attrs = [a.strip().lower() for a in session_cookie.split(";")]
        assert "httponly" in attrs and "secure" in attrs and "path=/" in attrs and "samesite=lax" in attrs
        assert not any(a.startswith("domain") for a in attrs)
        assert any(c.startswith("__Host-bff-login=") and "max-age=0" in c.lower() for c in cookies)  # cleared

        session_id = rig.browser.cookies.get("__Host-bff")
        assert session_id and len(session_id) >= 22  # >= 128 bits
        session = await rig.bff.store.get(rig.bff.crypto.store_key(session_id))
        assert session is not None and session.sub == alice.id and session.sid
        assert session.tokens.id_token and session.tokens.access_token
        assert session.key != session_id and session_id not in session.key
        no_tokens_in(r, session)

        me = await rig.browser.get("/bff/user")
        assert me.status_code == 200 and me.headers["cache-control"] == "no-store"
        body = me.json()
        assert body["sub"] == alice.id and body["claims"]["email"] == alice.email
        assert body["claims"]["name"] == "Alice"
        assert body["expires_at"] == int(session.expires_at)
        assert "sid" not in body["claims"] and "nonce" not in body["claims"]
        no_tokens_in(me, session)
        no_tokens_in(login, session)


async def test_callback_rotates_session_id(app: Any, container: Services, store_url: str) -> None:
    alice = make_user(container)
    async with bff_rig(app, container, store_url=store_url) as rig:
        await sign_in(rig, alice)
        first = rig.browser.cookies.get("__Host-bff")
        first_key = rig.bff.crypto.store_key(first)
        # A planted or earlier cookie never survives a sign-in: the callback issues a fresh id.
        r = await sign_in(rig, alice)
        assert r.status_code == 303
        second = rig.browser.cookies.get("__Host-bff")
        assert second and second != first
        assert await rig.bff.store.get(first_key) is None


async def test_callback_without_login_cookie_or_wrong_state(app: Any, container: Services) -> None:
    alice = make_user(container)
    async with bff_rig(app, container) as rig:
        r = await rig.browser.get("/bff/callback", params={"code": "x", "state": "y", "iss": ISSUER})
        assert r.status_code == 400 and r.json()["error"] == "invalid_request"
        login = await rig.browser.get("/bff/login")
        state = parse_qs(urlsplit(login.headers["location"]).query)["state"][0]
        r = await rig.browser.get("/bff/callback", params={"code": "x", "state": state, "iss": "https://evil.test"})
        assert r.status_code == 400  # RFC 9207: the response names another issuer
        await rig.browser.get("/bff/login")
        r = await rig.browser.get("/bff/callback", params={"code": "x", "state": "forged", "iss": ISSUER})
        assert r.status_code == 400 and "__Host-bff=" not in r.headers.get("set-cookie", "")
        assert (await rig.browser.get("/bff/user")).status_code == 401
        del alice


async def test_login_cookie_is_only_an_opaque_id(app: Any, container: Services, store_url: str) -> None:
    async with bff_rig(app, container, store_url=store_url) as rig:
        seen: set[str] = set()
        for _ in range(2):
            login = await rig.browser.get("/bff/login", params={"returnTo": "/orders?x=1"})
            q = parse_qs(urlsplit(login.headers["location"]).query)
            (header,) = cookie_headers(login)
            attrs = [a.strip().lower() for a in header.split(";")]
            assert "httponly" in attrs and "secure" in attrs and "path=/" in attrs and "samesite=lax" in attrs
            assert f"max-age={rig.settings.login_ttl}" in attrs and not any(a.startswith("domain") for a in attrs)
            login_id = rig.browser.cookies.get("__Host-bff-login")
            assert login_id and re.fullmatch(r"[A-Za-z0-9_-]{43}", login_id)  # 256 random bits, base64url
            assert login_id not in seen
            seen.add(login_id)
            raw = base64.urlsafe_b64decode(login_id + "=")
            assert len(raw) == 32
            with pytest.raises(ValueError):
                json.loads(raw)
            # The round trip's state is a server-side record under the id's digest; nothing of it is in the id.
            record = await rig.bff.store.take_login(rig.bff.crypto.login_key(login_id))
            assert record is not None and record.return_to == "/orders?x=1"
            (entry,) = record.flow.values()
            verifier = entry["data"]["code_verifier"]
            assert entry["data"]["nonce"] == q["nonce"][0] and len(verifier) >= 43
            for secret in (q["state"][0], q["nonce"][0], verifier, "/orders"):
                assert secret not in login_id and secret.encode() not in raw
                assert secret[:12] not in login_id
            assert record.key != login_id and login_id not in record.key


async def test_replayed_callback_is_refused(app: Any, container: Services, store_url: str) -> None:
    alice = make_user(container)
    async with bff_rig(app, container, store_url=store_url) as rig:
        await rig.browser.get("/bff/login")
        abandoned = rig.browser.cookies.get("__Host-bff-login")
        assert (await sign_in(rig, alice)).status_code == 303  # a new round trip gives up the browser's earlier one
        assert await rig.bff.store.take_login(rig.bff.crypto.login_key(abandoned)) is None

        login = await rig.browser.get("/bff/login")
        used = rig.browser.cookies.get("__Host-bff-login")
        r = await browse(rig.browser, login.headers["location"], until=CALLBACK)  # idp's session: no login page
        callback_url = r.headers["location"]
        done = await rig.browser.get(callback_url)
        assert done.status_code == 303 and rig.browser.cookies.get("__Host-bff")
        # The same callback with the same login cookie again (a replay, or the back button): refused.
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=rig.bff_app), base_url=ORIGIN) as other:
            replay = await other.get(callback_url, headers={"cookie": f"__Host-bff-login={used}"})
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_request"
        assert "start again" in replay.json()["error_description"]
        cookies = cookie_headers(replay)
        assert not any(c.startswith("__Host-bff=") for c in cookies)  # no session from a replay
        assert any(c.startswith("__Host-bff-login=") and "max-age=0" in c.lower() for c in cookies)


async def test_unknown_or_expired_login_is_refused(app: Any, container: Services, store_url: str) -> None:
    alice = make_user(container)
    async with bff_rig(app, container, store_url=store_url) as rig:
        assert (await sign_in(rig, alice)).status_code == 303  # idp's session: the next round trips skip its login
        login = await rig.browser.get("/bff/login")
        callback_url = (await browse(rig.browser, login.headers["location"], until=CALLBACK)).headers["location"]
        to_bff = httpx.ASGITransport(app=rig.bff_app, client=(rig.address, 50000))
        async with httpx.AsyncClient(transport=to_bff, base_url=ORIGIN) as other:
            forged = await other.get(callback_url, headers={"cookie": f"__Host-bff-login={secrets.token_urlsafe(32)}"})
        assert forged.status_code == 400 and "start again" in forged.json()["error_description"]
        container.clock.advance(rig.settings.login_ttl)  # the injected clock (FrozenClock)
        late = await rig.browser.get(callback_url)
        assert late.status_code == 400 and "start again" in late.json()["error_description"]
        assert not any(c.startswith("__Host-bff=") for c in cookie_headers(late))


async def test_login_cap_per_address_answers_429(app: Any, container: Services, store_url: str) -> None:
    alice = make_user(container)
    async with bff_rig(app, container, store_url=store_url, login_pending_per_ip=2) as rig:
        assert (await sign_in(rig, alice)).status_code == 303  # its place is given back by the callback
        for _ in range(5):  # one browser starting again and again holds one place: its earlier record ends
            assert (await rig.browser.get("/bff/login")).status_code == 302
        rig.browser.cookies.clear()  # another browser behind the same address
        assert (await rig.browser.get("/bff/login")).status_code == 302
        rig.browser.cookies.clear()
        r = await rig.browser.get("/bff/login")
        assert r.status_code == 429 and r.json()["error"] == "temporarily_unavailable"
        assert 1 <= int(r.headers["retry-after"]) <= rig.settings.login_ttl
        assert r.headers["cache-control"] == "no-store" and "set-cookie" not in r.headers
        # The same /64 shares the cap; the next /64 is counted apart.
        mine = ipaddress.IPv6Address(rig.address)
        for address, status in ((mine + 0x5000600070008, 429), (mine + 2**64, 302)):
            to_bff = httpx.ASGITransport(app=rig.bff_app, client=(str(address), 50000))
            async with httpx.AsyncClient(transport=to_bff, base_url=ORIGIN) as other:
                assert (await other.get("/bff/login")).status_code == status, address


@pytest.mark.parametrize("return_to", ["//evil.example/x", "/\\evil.example", "https://evil.example/", "/a\r\nb"])
async def test_login_refuses_foreign_return_to(app: Any, container: Services, return_to: str) -> None:
    alice = make_user(container)
    async with bff_rig(app, container) as rig:
        r = await sign_in(rig, alice, return_to=return_to)
        assert r.status_code == 303 and r.headers["location"] == "/"


async def _signed_in_session(rig: Any, alice: Any) -> BffSession:
    await sign_in(rig, alice)
    session = await rig.bff.store.get(rig.bff.crypto.store_key(rig.browser.cookies.get("__Host-bff")))
    assert session is not None
    return session


async def test_post_logout_needs_csrf_and_returns_only_the_navigation_url(
    app: Any, container: Services, store_url: str
) -> None:
    alice = make_user(container)
    async with bff_rig(app, container, store_url=store_url) as rig:
        session = await _signed_in_session(rig, alice)
        me = await rig.browser.get("/bff/user")
        logout_url = me.json()["logout_url"]
        handle = parse_qs(urlsplit(logout_url).query)["sid"][0]
        assert logout_url.startswith("/bff/logout?sid=") and len(handle) >= 43  # >= 256 bits
        assert handle != session.sid and handle not in session.key
        assert handle not in str(session.extra)  # sealed at rest, like the tokens
        for headers in (
            {"origin": ORIGIN},
            {"x-csrf": "1"},  # a POST without Origin: no browser sends that from script
            {"x-csrf": "1", "origin": "https://evil.test"},
            {"x-csrf": "1", "origin": ORIGIN, "sec-fetch-site": "same-site"},
            {"x-csrf": "yes", "origin": ORIGIN},
        ):
            r = await rig.browser.post("/bff/logout", headers=headers)
            assert r.status_code == 403 and r.json()["error"] == "csrf_failed", headers
        r = await rig.browser.post("/bff/logout", headers={"x-csrf": "1", "origin": ORIGIN})
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        assert r.json() == {"logout_url": logout_url}
        no_tokens_in(r, session)
        no_tokens_in(me, session)
        assert (await rig.browser.get("/bff/user")).status_code == 200  # POST ends nothing


async def test_logout_navigation_needs_the_sessions_handle(app: Any, container: Services, store_url: str) -> None:
    alice = make_user(container)
    async with bff_rig(app, container, store_url=store_url) as rig:
        session = await _signed_in_session(rig, alice)
        logout_url = (await rig.browser.get("/bff/user")).json()["logout_url"]
        navigate = {"sec-fetch-mode": "navigate", "sec-fetch-site": "same-origin"}
        refused = [
            ("/bff/logout", {}, 400),  # a cross-site link or <img> knows no handle
            ("/bff/logout", {"sec-fetch-mode": "navigate", "sec-fetch-site": "cross-site"}, 403),
            ("/bff/logout?sid=" + "A" * 43, navigate, 403),
            ("/bff/logout?sid=" + logout_url.split("=", 1)[1][:-1], navigate, 403),
            (logout_url, {"sec-fetch-mode": "navigate", "sec-fetch-site": "cross-site"}, 403),
            (logout_url, {"sec-fetch-mode": "navigate", "sec-fetch-site": "same-site"}, 403),
            (logout_url, {"sec-fetch-mode": "cors", "sec-fetch-site": "same-origin"}, 403),  # a script's fetch
        ]
        for url, headers, status in refused:
            r = await rig.browser.get(url, headers=headers)
            assert r.status_code == status, (url, headers, r.text)
            assert "location" not in r.headers and not r.headers.get_list("set-cookie")
            no_tokens_in(r, session)
            assert await rig.bff.store.get(session.key) is not None  # untouched
        assert (await rig.browser.head(logout_url)).status_code == 405
        assert (await rig.browser.get("/bff/user")).status_code == 200

        r = await rig.browser.get(logout_url, headers=navigate)
        assert r.status_code == 303 and r.headers["cache-control"] == "no-store"
        assert r.headers["referrer-policy"] == "no-referrer" and r.text == ""
        target = urlsplit(r.headers["location"])
        q = parse_qs(target.query)
        assert f"{target.scheme}://{target.netloc}{target.path}" == f"{ISSUER}/logout"
        assert q["id_token_hint"] == [session.tokens.id_token]  # in the navigation's redirect only
        assert q["post_logout_redirect_uri"] == [f"{ORIGIN}/"] and q["client_id"] == [rig.client.client_id]
        assert len(q["state"][0]) >= 22
        assert await rig.bff.store.get(session.key) is None
        assert any(c.startswith("__Host-bff=") and "max-age=0" in c.lower() for c in cookie_headers(r))
        assert (await rig.browser.get("/bff/user")).status_code == 401
        # The refresh token was revoked at idp (RFC 7009): it no longer refreshes.
        assert session.tokens.refresh_token
        refreshed = await rig.browser.post(
            f"{ISSUER}/token", data={"grant_type": "refresh_token", "refresh_token": session.tokens.refresh_token},
            auth=(rig.client.client_id, rig.settings.client_secret),
        )  # fmt: skip
        assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
        # idp takes the redirect: it ends its session and goes back to the SPA, state echoed, without asking.
        r = await rig.browser.get(r.headers["location"])
        assert r.status_code in (302, 303)
        back = urlsplit(r.headers["location"])
        assert f"{back.scheme}://{back.netloc}{back.path}" == f"{ORIGIN}/"
        assert parse_qs(back.query)["state"] == q["state"]
        # The old handle ends nothing now (no session); a fresh sign-in has a fresh one.
        session2 = await _signed_in_session(rig, alice)
        r = await rig.browser.get(logout_url, headers=navigate)
        assert r.status_code == 403 and await rig.bff.store.get(session2.key) is not None


async def test_logout_without_a_session_goes_to_idp_without_a_hint(app: Any, container: Services) -> None:
    async with bff_rig(app, container) as rig:
        r = await rig.browser.get("/bff/logout?sid=whatever")
        assert r.status_code == 303
        q = parse_qs(urlsplit(r.headers["location"]).query)
        assert "id_token_hint" not in q and q["post_logout_redirect_uri"] == [f"{ORIGIN}/"]
        r = await rig.browser.post("/bff/logout", headers={"x-csrf": "1", "origin": ORIGIN})
        assert r.status_code == 401


async def test_backchannel_logout_ends_sessions(app: Any, container: Services, store_url: str) -> None:
    alice, bob = make_user(container), make_user(container, "bob")
    async with bff_rig(app, container, store_url=store_url) as rig:
        await sign_in(rig, alice)
        alice_key = rig.bff.crypto.store_key(rig.browser.cookies.get("__Host-bff"))
        alice_session = await rig.bff.store.get(alice_key)
        assert alice_session is not None and alice_session.sid
        rig.browser.cookies.clear()
        await sign_in(rig, bob)
        bob_key = rig.bff.crypto.store_key(rig.browser.cookies.get("__Host-bff"))

        token = container.logout_tokens.issue(client_id=rig.client.client_id, sid=alice_session.sid, sub=alice.id)
        r = await rig.browser.post("/bff/backchannel", data={"logout_token": token})
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        assert await rig.bff.store.get(alice_key) is None
        assert await rig.bff.store.get(bob_key) is not None
        r = await rig.browser.post("/bff/backchannel", data={"logout_token": token})
        assert r.status_code == 400  # jti replay

        by_sub = container.logout_tokens.issue(client_id=rig.client.client_id, sid=None, sub=bob.id)
        assert (await rig.browser.post("/bff/backchannel", data={"logout_token": by_sub})).status_code == 200
        assert await rig.bff.store.get(bob_key) is None
        assert (await rig.browser.get("/bff/user")).status_code == 401


async def test_backchannel_refuses_bad_tokens(app: Any, container: Services) -> None:
    from idp.tokens import jwt
    from idp.tokens.logout_token import TYP

    alice = make_user(container)
    async with bff_rig(app, container) as rig:
        await sign_in(rig, alice)
        key = rig.bff.crypto.store_key(rig.browser.cookies.get("__Host-bff"))
        session = await rig.bff.store.get(key)
        assert session is not None
        lt = container.logout_tokens
        good = lt.claims(client_id=rig.client.client_id, sid=session.sid, sub=alice.id)
        bad = {
            "wrong aud": ({**good, "aud": "someone-else"}, TYP),
            "wrong iss": ({**good, "iss": "https://evil.test"}, TYP),
            "expired": ({**good, "exp": good["iat"] - 120, "iat": good["iat"] - 300}, TYP),
            "no events": ({k: v for k, v in good.items() if k != "events"}, TYP),
            "nonce": ({**good, "nonce": "n"}, TYP),
            "no sid or sub": ({k: v for k, v in good.items() if k not in ("sid", "sub")}, TYP),
            "no jti": ({k: v for k, v in good.items() if k != "jti"}, TYP),
            "an ID token": (good, "JWT"),
        }
        for name, (claims, typ) in bad.items():
            token = jwt.sign(container.keyring, "RS256", typ, claims)
            r = await rig.browser.post("/bff/backchannel", data={"logout_token": token})
            assert r.status_code == 400, name
            assert r.json()["error"] == "invalid_request"
        assert (await rig.browser.post("/bff/backchannel", data={"logout_token": "a.b.c"})).status_code == 400
        assert (await rig.browser.post("/bff/backchannel", data={})).status_code == 400
        assert (await rig.browser.post("/bff/backchannel", json={"logout_token": "x"})).status_code == 400
        twice = "logout_token=a.b.c&logout_token=a.b.c"
        form = {"content-type": "application/x-www-form-urlencoded"}
        assert (await rig.browser.post("/bff/backchannel", content=twice, headers=form)).status_code == 400
        big = "logout_token=" + "a" * 20_000
        assert (await rig.browser.post("/bff/backchannel", content=big, headers=form)).status_code == 413
        assert (await rig.browser.post("/bff/backchannel", content=b"\xff=1", headers=form)).status_code == 400
        assert await rig.bff.store.get(key) is not None  # none of them ended the session


async def test_idle_and_absolute_expiry(app: Any, container: Services) -> None:
    alice = make_user(container)
    async with bff_rig(app, container, session_lifetime=3600, idle_timeout=600) as rig:
        await sign_in(rig, alice)
        container.clock.advance(590)
        assert (await rig.browser.get("/bff/user")).status_code == 200  # a use restarts the idle time
        container.clock.advance(590)
        assert (await rig.browser.get("/bff/user")).status_code == 200
        container.clock.advance(601)
        r = await rig.browser.get("/bff/user")
        assert r.status_code == 401
        await sign_in(rig, alice)
        for _ in range(7):
            container.clock.advance(500)
            r = await rig.browser.get("/bff/user")
        assert r.status_code == 401  # 3500 s of use: the absolute lifetime ended it
