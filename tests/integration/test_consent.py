"""Consent page: client name, scopes in plain words, allow/deny remembered per user+client+scopes (ASVS V10.7)."""

from __future__ import annotations

import pytest

from tests.pagekit import SAME_ORIGIN, field, make_client, make_user, pending, session_value, sign_in


@pytest.fixture
def alice(container):
    return make_user(container)


@pytest.fixture
def rp(container):
    return make_client(container, name="Photo Book")


async def consent_page(client, p):
    r = await client.get("/consent", params={"interaction": p.id})
    assert r.status_code == 200, r.text
    return r


async def decide(client, p, decision):
    token = field((await consent_page(client, p)).text, "csrf")
    return await client.post(
        "/consent", data={"interaction": p.id, "decision": decision, "csrf": token}, headers=SAME_ORIGIN
    )


async def test_page_shows_client_and_scopes_in_plain_words(client, container, alice, rp):
    p = pending(container, rp, ["openid", "email", "offline_access", "photos:read"])
    await sign_in(client, interaction=p.id)
    r = await consent_page(client, p)
    assert "Photo Book" in r.text
    assert "See your email address" in r.text
    assert "Stay connected while you are not using it" in r.text
    assert "photos:read" in r.text
    assert "keeps this access until you remove it" in r.text  # the lifetime of what is granted
    assert "alice" in r.text


async def test_allow_stores_consent_and_resumes(client, container, alice, rp):
    p = pending(container, rp, ["openid", "profile"])
    await sign_in(client, interaction=p.id)
    r = await decide(client, p, "allow")
    assert r.status_code == 303
    assert r.headers["location"] == f"/authorize/resume?interaction={p.id}"
    assert container.interactions.get(p.id).consent == "granted"
    assert container.consents.covers(alice.id, rp.client_id, ["openid", "profile"])
    assert container.consents.covers(alice.id, rp.client_id, ["openid"])
    assert not container.consents.covers(alice.id, rp.client_id, ["openid", "email"])


async def test_consent_merges_across_requests(client, container, alice, rp):
    p1 = pending(container, rp, ["openid", "profile"])
    await sign_in(client, interaction=p1.id)
    await decide(client, p1, "allow")
    p2 = pending(container, rp, ["openid", "email"])
    await decide(client, p2, "allow")
    assert container.consents.covers(alice.id, rp.client_id, ["openid", "profile", "email"])


async def test_deny_records_denied_and_stores_nothing(client, container, alice, rp):
    p = pending(container, rp)
    await sign_in(client, interaction=p.id)
    r = await decide(client, p, "deny")
    assert r.status_code == 303 and r.headers["location"] == f"/authorize/resume?interaction={p.id}"
    assert container.interactions.get(p.id).consent == "denied"
    assert not container.consents.covers(alice.id, rp.client_id, ["openid"])


async def test_without_session_goes_to_login(client, container, alice, rp):
    p = pending(container, rp)
    r = await client.get("/consent", params={"interaction": p.id})
    assert r.status_code == 303 and r.headers["location"] == f"/login?interaction={p.id}"


async def test_a_different_session_cannot_finish_the_request(client, app, container, alice, rp):
    p = pending(container, rp)
    await sign_in(client, interaction=p.id)
    await sign_in(client, switch=True)  # same browser signs in again: same sid, so still allowed
    assert (await client.get("/consent", params={"interaction": p.id})).status_code == 200
    import httpx

    from tests.pagekit import ISSUER

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as other:
        await sign_in(other)
        r = await other.get("/consent", params={"interaction": p.id})
        assert r.status_code == 303 and r.headers["location"].startswith("/login?interaction=")


async def test_existing_session_without_login_sid_is_recorded(client, container, alice, rp):
    await sign_in(client)
    p = pending(container, rp)  # the authorization endpoint found the session and sent us straight here
    await decide(client, p, "allow")
    sid = container.login_sessions.from_cookie(session_value(client)).sid
    assert container.interactions.get(p.id).login_sid == sid


async def test_unknown_or_disabled_client_and_expired_interaction(client, container, alice, rp):
    p = pending(container, rp)
    await sign_in(client, interaction=p.id)
    container.client_admin.set_disabled(rp.client_id, True, actor="test")
    r = await client.get("/consent", params={"interaction": p.id})
    assert r.status_code == 400 and "invalid_client" in r.text
    container.clock.advance(601)
    r = await client.get("/consent", params={"interaction": p.id})
    assert r.status_code == 400 and "interaction_expired" in r.text
    assert (await client.get("/consent")).status_code == 400


async def test_bad_decision_changes_nothing(client, container, alice, rp):
    p = pending(container, rp)
    await sign_in(client, interaction=p.id)
    token = field((await consent_page(client, p)).text, "csrf")
    r = await client.post(
        "/consent", data={"interaction": p.id, "decision": "maybe", "csrf": token}, headers=SAME_ORIGIN
    )
    assert r.status_code == 400
    assert container.interactions.get(p.id).consent is None
