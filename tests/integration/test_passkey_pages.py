"""Passkeys over HTTP: the account page registers, renames and removes them; the sign-in page signs in with one.

Real ceremonies from a software authenticator (tests/passkeykit.py), on both backends."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import select

from idp.store.models import AuditEventRow
from tests.pagekit import SAME_ORIGIN, account_csrf, field, make_client, make_user, pending, sign_in
from tests.passkeykit import SoftAuthenticator


def soft(c) -> SoftAuthenticator:
    return SoftAuthenticator(origin=c.passkeys.origin, rp_id=c.passkeys.rp_id)


async def add_passkey(client: httpx.AsyncClient, auth: SoftAuthenticator, name: str = "Laptop") -> httpx.Response:
    csrf = await account_csrf(client)
    r = await client.post("/account/passkeys/options", data={"csrf": csrf}, headers=SAME_ORIGIN)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    credential = auth.create(body["publicKey"])
    return await client.post(
        "/account/passkeys/add",
        data={"csrf": csrf, "ceremony": body["ceremony"], "credential": credential, "name": name},
        headers=SAME_ORIGIN,
    )


async def passkey_sign_in(
    client: httpx.AsyncClient, auth: SoftAuthenticator, query: dict | None = None, **form: str
) -> httpx.Response:
    params = query or ({"interaction": form["interaction"]} if "interaction" in form else {})
    page = await client.get("/login", params=params)
    csrf = field(page.text, "csrf")
    r = await client.post("/login/passkey/options", data={"csrf": csrf}, headers=SAME_ORIGIN)
    assert r.status_code == 200, r.text
    body = r.json()
    data = {"csrf": csrf, "ceremony": body["ceremony"], "credential": auth.get(body["publicKey"])} | form
    return await client.post("/login/passkey", data=data, headers=SAME_ORIGIN)


def actions(c) -> list[str]:
    with c.sessions() as s:
        return list(s.scalars(select(AuditEventRow.action).order_by(AuditEventRow.id)))


@pytest.fixture
async def registered(container, client) -> SoftAuthenticator:
    make_user(container)
    assert (await sign_in(client)).status_code == 303
    auth = soft(container)
    r = await add_passkey(client, auth, name="Work laptop")
    assert r.status_code == 303
    assert r.headers["location"] == "/account?done=passkey_added#passkeys"
    return auth


async def test_the_pages_offer_passkeys_with_a_script_the_csp_allows(container, client):
    make_user(container)
    page = await client.get("/login")
    assert 'autocomplete="username webauthn"' in page.text
    assert 'action="/login/passkey"' in page.text
    assert '<script src="/static/passkeys.js" defer></script>' in page.text
    assert "<script>" not in page.text  # no inline script: the CSP allows 'self' only
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    js = await client.get("/static/passkeys.js")
    assert js.status_code == 200
    assert "javascript" in js.headers["content-type"]
    assert "navigator.credentials.create" in js.text


async def test_register_from_the_account_page(container, client, registered):
    page = await client.get("/account")
    assert "Work laptop" in page.text
    assert "Passkey added" in (await client.get("/account?done=passkey_added")).text
    user = container.directory.store.by_username("alice")
    assert [p.name for p in container.passkeys.list(user.id)] == ["Work laptop"]
    assert "passkey.added" in actions(container)


async def test_sign_in_with_a_passkey_without_a_password(container, app, registered):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://idp.test") as fresh:
        r = await passkey_sign_in(fresh, registered)
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/account"
        page = await fresh.get("/account")
        assert page.status_code == 200
        assert "Work laptop" in page.text
    user = container.directory.store.by_username("alice")
    [session, *_] = [s for s in container.login_sessions.list_for_user(user.id) if s.amr != ("pwd",)]
    assert session.amr == ("hwk", "user", "mfa")  # RFC 8176: the key, user verification, so two factors
    assert actions(container)[-1] == "login"


async def test_a_passkey_sign_in_resumes_the_authorization(container, app, registered):
    parked = pending(container, make_client(container))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://idp.test") as fresh:
        r = await passkey_sign_in(fresh, registered, interaction=parked.id)
        assert r.status_code == 303, r.text
        assert r.headers["location"] == f"/authorize/resume?interaction={parked.id}"
    resumed = container.interactions.get(parked.id)
    assert resumed.login_sid


async def test_a_bad_answer_shows_the_sign_in_page_again(container, app, registered):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://idp.test") as fresh:
        page = await fresh.get("/login")
        csrf = field(page.text, "csrf")
        body = (await fresh.post("/login/passkey/options", data={"csrf": csrf}, headers=SAME_ORIGIN)).json()
        answer = json.loads(registered.get(body["publicKey"], uv=False))
        data = {"csrf": csrf, "ceremony": body["ceremony"], "credential": json.dumps(answer)}
        r = await fresh.post("/login/passkey", data=data, headers=SAME_ORIGIN)
        assert r.status_code == 400
        assert "could not be verified" in r.text
        assert "__Host-idp-session" not in r.headers.get("set-cookie", "")
        again = await fresh.post("/login/passkey", data=data, headers=SAME_ORIGIN)  # the challenge was taken
        assert "expired" in again.text


async def test_a_disabled_user_cannot_sign_in_with_a_passkey(container, app, registered):
    container.user_admin.set_disabled("alice", True, actor="admin")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://idp.test") as fresh:
        r = await passkey_sign_in(fresh, registered)
        assert r.status_code == 400
        assert "__Host-idp-session" not in r.headers.get("set-cookie", "")


@pytest.mark.parametrize("path", ["/login/passkey/options", "/account/passkeys/options"])
async def test_options_need_the_pages_token_and_origin(container, client, path):
    make_user(container)
    if path.startswith("/account"):
        await sign_in(client)
        csrf = await account_csrf(client)
    else:
        csrf = field((await client.get("/login")).text, "csrf")
    assert (await client.post(path, data={"csrf": "nope"}, headers=SAME_ORIGIN)).status_code == 400
    r = await client.post(path, data={"csrf": csrf}, headers={"origin": "https://evil.example"})
    assert r.status_code == 400
    assert r.json()["error"]


async def test_adding_or_removing_needs_a_recent_sign_in(container, client, clock, registered):
    user = container.directory.store.by_username("alice")
    [passkey] = container.passkeys.list(user.id)
    clock.advance(container.settings.reauth_seconds + 1)
    page = await client.get("/account")
    assert "confirm it's you first" in page.text
    assert 'action="/account/passkeys/remove"' not in page.text
    csrf = field(page.text, "csrf")
    r = await client.post("/account/passkeys/options", data={"csrf": csrf}, headers=SAME_ORIGIN)
    assert r.status_code == 403
    r = await client.post("/account/passkeys/remove", data={"csrf": csrf, "passkey_id": passkey.id},
                          headers=SAME_ORIGIN)  # fmt: skip
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?reauth=1")
    assert container.passkeys.list(user.id)
    reauth = await client.get("/login?reauth=1&next=/account%23passkeys")
    assert reauth.status_code == 200  # the form, not a redirect: the person confirms who they are
    assert "Signed in as" in reauth.text
    # confirmed with the passkey
    r = await passkey_sign_in(client, registered, {"reauth": "1"}, next=field(reauth.text, "next"))
    assert r.headers["location"] == "/account#passkeys"
    csrf = await account_csrf(client)
    r = await client.post("/account/passkeys/remove", data={"csrf": csrf, "passkey_id": passkey.id},
                          headers=SAME_ORIGIN)  # fmt: skip
    assert r.headers["location"] == "/account?done=passkey_removed#passkeys"
    assert container.passkeys.list(user.id) == []


async def test_rename_and_remove(container, client, registered):
    user = container.directory.store.by_username("alice")
    [passkey] = container.passkeys.list(user.id)
    csrf = await account_csrf(client)
    r = await client.post("/account/passkeys/rename", data={"csrf": csrf, "passkey_id": passkey.id, "name": "Phone"},
                          headers=SAME_ORIGIN)  # fmt: skip
    assert r.headers["location"] == "/account?done=passkey_renamed#passkeys"
    assert "Phone" in (await client.get("/account")).text
    r = await client.post("/account/passkeys/rename", data={"csrf": csrf, "passkey_id": passkey.id, "name": " "},
                          headers=SAME_ORIGIN)  # fmt: skip
    assert r.status_code == 400
    r = await client.post("/account/passkeys/remove", data={"csrf": "bad", "passkey_id": passkey.id},
                          headers=SAME_ORIGIN)  # fmt: skip
    assert r.status_code == 400
    assert container.passkeys.list(user.id)
    r = await client.post("/account/passkeys/remove", data={"csrf": csrf, "passkey_id": passkey.id},
                          headers=SAME_ORIGIN)  # fmt: skip
    assert r.status_code == 303
    assert container.passkeys.list(user.id) == []
    assert actions(container)[-2:] == ["passkey.renamed", "passkey.removed"]


async def test_another_persons_passkey_cannot_be_removed(container, client, app, registered):
    user = container.directory.store.by_username("alice")
    [passkey] = container.passkeys.list(user.id)
    make_user(container, "bob")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://idp.test") as bob:
        await sign_in(bob, "bob")
        csrf = await account_csrf(bob)
        r = await bob.post("/account/passkeys/remove", data={"csrf": csrf, "passkey_id": passkey.id},
                          headers=SAME_ORIGIN)  # fmt: skip
        assert r.status_code == 303
    assert container.passkeys.list(user.id) == [passkey]


async def test_registration_in_one_session_cannot_finish_in_another(container, client, app, registered):
    csrf = await account_csrf(client)
    body = (await client.post("/account/passkeys/options", data={"csrf": csrf}, headers=SAME_ORIGIN)).json()
    make_user(container, "bob")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://idp.test") as bob:
        await sign_in(bob, "bob")
        bob_csrf = await account_csrf(bob)
        data = {"csrf": bob_csrf, "ceremony": body["ceremony"], "credential": soft(container).create(body["publicKey"])}
        r = await bob.post("/account/passkeys/add", data=data, headers=SAME_ORIGIN)
        assert r.status_code == 400
        assert "started elsewhere" in r.text


async def test_a_passkey_is_the_second_factor_after_the_password(container, app, registered):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://idp.test") as fresh:
        r = await sign_in(fresh)
        assert r.headers["location"] == "/login/factor"  # the person has a passkey: it is asked for
        page = await fresh.get("/login/factor")
        assert 'action="/login/factor/passkey"' in page.text
        assert 'action="/login/factor"' not in page.text  # no authenticator app: no code field
        csrf = field(page.text, "csrf")
        body = (await fresh.post("/login/factor/passkey/options", data={"csrf": csrf}, headers=SAME_ORIGIN)).json()
        assert [d["id"] for d in body["publicKey"]["allowCredentials"]]  # this person's passkeys only
        assert body["publicKey"]["userVerification"] == "preferred"
        answer = registered.get(body["publicKey"], uv=False)  # a touch is enough after the password
        data = {"csrf": csrf, "ceremony": body["ceremony"], "credential": answer}
        r = await fresh.post("/login/factor/passkey", data=data, headers=SAME_ORIGIN)
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/account"
        assert (await fresh.get("/account")).status_code == 200
    user = container.directory.store.by_username("alice")
    amrs = {s.amr for s in container.login_sessions.list_for_user(user.id)}
    assert ("pwd", "hwk", "mfa") in amrs


async def test_the_second_factor_refuses_another_persons_passkey(container, app, registered):
    make_user(container, "bob")
    bob_key = soft(container)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://idp.test") as bob:
        await sign_in(bob, "bob")
        assert (await add_passkey(bob, bob_key)).status_code == 303
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://idp.test") as fresh:
        assert (await sign_in(fresh)).headers["location"] == "/login/factor"
        csrf = field((await fresh.get("/login/factor")).text, "csrf")
        body = (await fresh.post("/login/factor/passkey/options", data={"csrf": csrf}, headers=SAME_ORIGIN)).json()
        data = {"csrf": csrf, "ceremony": body["ceremony"], "credential": bob_key.get(body["publicKey"])}
        r = await fresh.post("/login/factor/passkey", data=data, headers=SAME_ORIGIN)
        assert r.status_code == 400
        assert "__Host-idp-session" not in r.headers.get("set-cookie", "")


async def test_removing_a_passkey_signs_out_the_other_sessions(container, client, app, registered):
    user = container.directory.store.by_username("alice")
    [passkey] = container.passkeys.list(user.id)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://idp.test") as other:
        assert (await passkey_sign_in(other, registered)).status_code == 303
        assert (await other.get("/account")).status_code == 200
        before = client.cookies.get("__Host-idp-session")
        csrf = await account_csrf(client)
        r = await client.post("/account/passkeys/remove", data={"csrf": csrf, "passkey_id": passkey.id},
                              headers=SAME_ORIGIN)  # fmt: skip
        assert r.status_code == 303
        assert client.cookies.get("__Host-idp-session") != before  # rotated (ASVS V7.2.4)
        assert (await client.get("/account")).status_code == 200
        assert (await other.get("/account")).status_code == 303  # signed out


async def test_an_operators_factor_reset_removes_the_passkeys(container, registered):
    user = container.directory.store.by_username("alice")
    removed, _ = container.user_admin.reset_factors(user, actor="admin", sign_out=True, reason="lost phone")
    assert removed == 1
    assert container.passkeys.list(user.id) == []
    assert "passkey.reset" in actions(container)


class TestTurnedOff:
    @pytest.fixture
    def settings_overrides(self):
        return {"passkeys_enabled": False}

    async def test_no_passkey_controls_and_no_passkey_second_factor(self, container, client):
        user = make_user(container)
        auth = soft(container)
        ceremony = container.passkeys.registration_options(user.id, "alice", "Alice", binding="x")
        response = auth.create(ceremony.options)
        container.passkeys.register(user.id, binding="x", ceremony_id=ceremony.id, response=response, name="", ip="")
        page = await client.get("/login")
        assert "passkeys.js" not in page.text and "webauthn" not in page.text
        csrf = field(page.text, "csrf")
        assert (
            await client.post("/login/passkey/options", data={"csrf": csrf}, headers=SAME_ORIGIN)
        ).status_code == 404
        r = await sign_in(client)
        assert r.headers["location"] == "/account"  # the passkey is not asked for: the password alone signs in
        assert 'id="passkeys"' not in (await client.get("/account")).text
