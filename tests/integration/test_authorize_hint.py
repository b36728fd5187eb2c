"""``id_token_hint`` at /authorize (OIDC Core §3.1.2.1): only the hinted person's session may answer.

The hint is judged as at /logout (an ID token we signed, expired is fine, issued to this client); one that
does not verify is ``invalid_request``.
"""

from __future__ import annotations

import httpx
import pytest

from idp.clients.model import Client
from idp.services import Services
from idp.users.directory import User
from tests.integration.test_e2e_native import sign_in_on_page
from tests.oauthkit import (
    ISSUER,
    auth_params,
    exchange,
    make_user,
    pkce_pair,
    query,
    sign_in_fast,
    tokens_for,
    web_client,
)


@pytest.fixture
def web(container: Services) -> tuple[Client, str]:
    return web_client(container)


@pytest.fixture
def alice(container: Services) -> User:
    return make_user(container, "alice")


@pytest.fixture
def bob(container: Services) -> User:
    return make_user(container, "bob")


async def _hint(c: Services, http: httpx.AsyncClient, web: tuple[Client, str], user: User) -> str:
    return str((await tokens_for(c, http, web[0], web[1], user))["id_token"])


def _authorize(web: tuple[Client, str], hint: str, **extra: str) -> dict[str, str]:
    return auth_params(web[0], pkce_pair()[1], id_token_hint=hint, **extra)


async def test_prompt_none_with_someone_else_signed_in_is_login_required(
    client: httpx.AsyncClient, container: Services, web: tuple[Client, str], alice: User, bob: User
) -> None:
    hint = await _hint(container, client, web, alice)
    sign_in_fast(container, client, bob)  # the browser now belongs to bob
    params = _authorize(web, hint, prompt="none")
    q = query((await client.get("/authorize", params=params)).headers["location"])
    assert q["error"] == "login_required" and "code" not in q, q
    assert q["state"] == params["state"] and q["iss"] == ISSUER


async def test_the_hinted_person_signed_in_gets_a_code(
    client: httpx.AsyncClient, container: Services, web: tuple[Client, str], alice: User
) -> None:
    hint = await _hint(container, client, web, alice)
    container.clock.advance(container.settings.id_token_ttl + 60)  # an expired hint still names alice
    q = query((await client.get("/authorize", params=_authorize(web, hint, prompt="none"))).headers["location"])
    assert "code" in q, q


async def test_without_prompt_none_the_login_page_asks_for_the_hinted_person(
    client: httpx.AsyncClient, container: Services, web: tuple[Client, str], alice: User, bob: User
) -> None:
    hint = await _hint(container, client, web, alice)
    sign_in_fast(container, client, bob)
    r = await client.get("/authorize", params=_authorize(web, hint))
    assert r.headers["location"].startswith(f"{ISSUER}/login?interaction="), r.headers["location"]
    login = r.headers["location"]
    # Signing in as bob again does not answer for alice...
    r = await sign_in_on_page(client, login, bob.username)
    q = query((await client.get(r.headers["location"])).headers["location"])
    assert q["error"] == "login_required" and "code" not in q, q
    # ...signing in as alice does, and the code is hers.
    verifier, challenge = pkce_pair()
    r = await client.get("/authorize", params=auth_params(web[0], challenge, id_token_hint=hint))
    r = await sign_in_on_page(client, r.headers["location"], alice.username)
    q = query((await client.get(r.headers["location"])).headers["location"])
    tokens = (await exchange(client, web[0], web[1], q["code"], verifier)).json()
    me = await client.get("/userinfo", headers={"authorization": f"Bearer {tokens['access_token']}"})
    assert me.json()["sub"] == alice.id


@pytest.mark.parametrize("bad", ["garbage", "a.b.c", "another-clients"])
async def test_a_hint_that_does_not_verify_is_invalid_request(
    client: httpx.AsyncClient, container: Services, web: tuple[Client, str], alice: User, bad: str
) -> None:
    hint = bad
    if bad == "another-clients":  # a genuine ID token, issued to another client
        other = web_client(container, name="Other App")
        hint = await _hint(container, client, other, alice)
    params = _authorize(web, hint, prompt="none")
    q = query((await client.get("/authorize", params=params)).headers["location"])
    assert q["error"] == "invalid_request" and "id_token_hint" in q["error_description"], q
    assert q["state"] == params["state"] and q["iss"] == ISSUER
