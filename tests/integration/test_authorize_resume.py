"""/authorize/resume: the browser that signed in finishes the request, once; prompt=login and max_age terminate."""

from __future__ import annotations

import httpx

from idp.interaction import SESSION_COOKIE
from idp.services import Services
from tests.integration.test_e2e_native import sign_in_on_page
from tests.oauthkit import (
    ISSUER,
    auth_params,
    continue_on_page,
    exchange,
    make_user,
    pkce_pair,
    query,
    sign_in_fast,
    web_client,
)


async def _to_login(client: httpx.AsyncClient, params: dict[str, str]) -> str:
    r = await client.get("/authorize", params=params)
    assert r.headers["location"].startswith(f"{ISSUER}/login?interaction="), r.headers.get("location")
    return r.headers["location"]


async def test_login_then_resume_issues_a_code(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    user = make_user(container)
    verifier, challenge = pkce_pair()
    params = auth_params(web, challenge, nonce="n1")
    r = await sign_in_on_page(client, await _to_login(client, params), user.username)
    assert r.headers["location"].startswith("/authorize/resume?interaction=")
    r = await client.get(r.headers["location"])
    q = query(r.headers["location"])
    assert q["state"] == params["state"] and q["iss"] == ISSUER
    assert (await exchange(client, web, secret, q["code"], verifier)).status_code == 200


async def test_resume_is_single_use(client: httpx.AsyncClient, container: Services) -> None:
    web, _ = web_client(container)
    user = make_user(container)
    r = await sign_in_on_page(client, await _to_login(client, auth_params(web, pkce_pair()[1])), user.username)
    assert "code" in query((await client.get(r.headers["location"])).headers["location"])
    again = await client.get(r.headers["location"])
    assert again.status_code == 400 and "location" not in again.headers


async def test_another_browser_cannot_finish_the_request(client: httpx.AsyncClient, container: Services) -> None:
    web, _ = web_client(container)
    alice, mallory = make_user(container), make_user(container, "mallory")
    r = await sign_in_on_page(client, await _to_login(client, auth_params(web, pkce_pair()[1])), alice.username)
    resume_url = r.headers["location"]
    sign_in_fast(container, client, mallory)  # the resume arrives with someone else's session
    r = await client.get(resume_url)
    q = query(r.headers["location"])
    assert q["error"] == "login_required" and "code" not in q


async def test_resume_without_any_session(client: httpx.AsyncClient, container: Services) -> None:
    web, _ = web_client(container)
    user = make_user(container)
    r = await sign_in_on_page(client, await _to_login(client, auth_params(web, pkce_pair()[1])), user.username)
    client.cookies.delete(SESSION_COOKIE)
    r = await client.get(r.headers["location"])
    assert query(r.headers["location"])["error"] == "login_required"


async def test_prompt_login_and_max_age_zero_do_not_loop(client: httpx.AsyncClient, container: Services) -> None:
    web, secret = web_client(container)
    user = make_user(container)
    sign_in_fast(container, client, user)
    container.clock.advance(30)
    for extra in ({"prompt": "login"}, {"max_age": "0"}):
        verifier, challenge = pkce_pair()
        login = await _to_login(client, auth_params(web, challenge, **extra))
        r = await sign_in_on_page(client, login, user.username)
        r = await client.get(r.headers["location"])
        code = query(r.headers["location"])["code"]
        tokens = (await exchange(client, web, secret, code, verifier)).json()
        claims = container.id_tokens.verify(tokens["id_token"], client_id=web.client_id)
        assert claims["auth_time"] == int(container.clock.now())  # the fresh authentication


async def test_expired_interaction(client: httpx.AsyncClient, container: Services) -> None:
    web, _ = web_client(container)
    login = await _to_login(client, auth_params(web, pkce_pair()[1]))
    container.clock.advance(3600)
    r = await client.get("/authorize/resume", params={"interaction": query(login)["interaction"]})
    assert r.status_code == 400 and "location" not in r.headers
    r = await client.get("/authorize/resume", params={"interaction": "x" * 500})
    assert r.status_code == 400


async def test_the_code_carries_exactly_the_consented_scopes(client: httpx.AsyncClient, container: Services) -> None:
    """The consent page records the scopes it showed; if the request resolves to others by the time it resumes
    (the client's registration changed meanwhile), the person is asked again rather than granted more."""
    rp, secret = web_client(container, first_party=False, scope="openid profile")
    user = make_user(container)
    sign_in_fast(container, client, user)
    verifier, challenge = pkce_pair()
    r = await client.get("/authorize", params=auth_params(rp, challenge, scope=""))  # the registered scopes
    assert r.headers["location"].startswith(f"{ISSUER}/consent?"), r.headers["location"]
    container.clients.update(rp.client_id, scope="openid profile email")  # while the page is open
    r = await continue_on_page(client, r.headers["location"])
    assert container.consents.covers(user.id, rp.client_id, ["openid", "profile"])
    assert not container.consents.covers(user.id, rp.client_id, ["email"])
    assert r.headers["location"].startswith(f"{ISSUER}/consent?"), r.headers["location"]  # not a code with email
    assert "See your email address" in (await client.get(r.headers["location"])).text
    r = await continue_on_page(client, r.headers["location"])
    q = query(r.headers["location"])
    tokens = (await exchange(client, rp, secret, q["code"], verifier)).json()
    assert set(tokens["scope"].split()) == {"openid", "profile", "email"}
    assert container.consents.covers(user.id, rp.client_id, ["openid", "profile", "email"])
