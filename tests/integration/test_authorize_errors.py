"""Authorization endpoint errors: which are redirected (with state and iss), what is accepted, prompt handling."""

from __future__ import annotations

import httpx
import pytest

from idp.services import Services
from tests.oauthkit import (
    FORM,
    ISSUER,
    auth_params,
    make_user,
    pkce_pair,
    query,
    sign_in_fast,
    web_client,
)


def _error(r: httpx.Response, expected: str, state: str | None = None) -> dict[str, str]:
    assert r.status_code in (302, 303), (r.status_code, r.text[:200])
    q = query(r.headers["location"])
    assert r.headers["location"].startswith("https://rp.example/cb?")
    assert q["error"] == expected, q
    assert q["iss"] == ISSUER  # RFC 9207 §2: iss on error responses
    if state is not None:
        assert q["state"] == state  # RFC 6749 §4.1.2.1: echoed unmodified
    assert "code" not in q
    return q


@pytest.mark.parametrize("response_type", ["token", "id_token", "id_token token", "code id_token", "code token"])
async def test_only_code_is_supported(client: httpx.AsyncClient, container: Services, response_type: str) -> None:
    web, _ = web_client(container)
    params = auth_params(web, pkce_pair()[1], response_type=response_type, state="s/1 +x")
    _error(await client.get("/authorize", params=params), "unsupported_response_type", "s/1 +x")


async def test_missing_response_type(client: httpx.AsyncClient, container: Services) -> None:
    web, _ = web_client(container)
    params = auth_params(web, pkce_pair()[1])
    del params["response_type"]
    _error(await client.get("/authorize", params=params), "invalid_request", params["state"])


@pytest.mark.parametrize("name", ["scope", "state", "response_type", "code_challenge", "nonce", "prompt"])
async def test_repeated_parameter_is_invalid_request(client: httpx.AsyncClient, container: Services, name: str) -> None:
    web, _ = web_client(container)
    params = list(auth_params(web, pkce_pair()[1], nonce="n", prompt="login").items())
    value = dict(params)[name]
    r = await client.get("/authorize", params=[*params, (name, value)])
    q = _error(r, "invalid_request")  # RFC 6749 §3.1
    assert ("state" in q) == (name != "state")


@pytest.mark.parametrize("name", ["client_id", "redirect_uri"])
async def test_repeated_client_or_redirect_is_a_page(client: httpx.AsyncClient, container: Services, name: str) -> None:
    web, _ = web_client(container)
    params = list(auth_params(web, pkce_pair()[1]).items())
    r = await client.get("/authorize", params=[*params, (name, dict(params)[name])])
    assert r.status_code == 400 and "location" not in r.headers


async def test_scope_not_registered(client: httpx.AsyncClient, container: Services) -> None:
    web, _ = web_client(container, scope="openid profile")
    params = auth_params(web, pkce_pair()[1], scope="openid email")
    _error(await client.get("/authorize", params=params), "invalid_scope", params["state"])


async def test_client_without_code_grant(client: httpx.AsyncClient, container: Services) -> None:
    web, _ = web_client(container, grant_types=["client_credentials"], redirect_uris=["https://rp.example/cb"])
    params = auth_params(web, pkce_pair()[1])
    _error(await client.get("/authorize", params=params), "unauthorized_client", params["state"])


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"request": "eyJ.x.y"}, "request_not_supported"),
        ({"request_uri": "https://rp.example/r"}, "request_uri_not_supported"),
        ({"response_mode": "fragment"}, "invalid_request"),
        ({"response_mode": "form_post"}, "invalid_request"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"max_age": "soon"}, "invalid_request"),
        ({"max_age": "-1"}, "invalid_request"),
        ({"resource": "https://evil.example"}, "invalid_target"),
    ],
)
async def test_other_invalid_requests_redirect(
    client: httpx.AsyncClient, container: Services, extra: dict[str, str], error: str
) -> None:
    web, _ = web_client(container)
    params = auth_params(web, pkce_pair()[1], **extra)
    _error(await client.get("/authorize", params=params), error, params["state"])


async def test_unknown_parameters_and_order_are_ignored(client: httpx.AsyncClient, container: Services) -> None:
    web, _ = web_client(container)
    sign_in_fast(container, client, make_user(container))
    params = list(auth_params(web, pkce_pair()[1], ui_locales="fr", login_hint="alice", foo="bar").items())
    r = await client.get("/authorize", params=list(reversed(params)))
    assert r.status_code == 302
    q = query(r.headers["location"])
    assert q["code"] and q["state"] == dict(params)["state"] and q["iss"] == ISSUER


async def test_post_to_the_authorization_endpoint(client: httpx.AsyncClient, container: Services) -> None:
    web, _ = web_client(container)
    sign_in_fast(container, client, make_user(container))
    r = await client.post("/authorize", data=auth_params(web, pkce_pair()[1]))
    assert r.status_code == 303  # RFC 9700 §4.12: never 307 after a POST
    assert "code" in query(r.headers["location"])
    r = await client.post("/authorize", content=b"{}", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "location" not in r.headers


async def test_success_carries_state_iss_and_no_store(client: httpx.AsyncClient, container: Services) -> None:
    web, _ = web_client(container, redirect_uris=["https://rp.example/cb?tenant=7"])
    sign_in_fast(container, client, make_user(container))
    params = auth_params(web, pkce_pair()[1], state="a b&c=d")
    r = await client.get("/authorize", params=params)
    assert r.status_code == 302
    loc = r.headers["location"]
    assert loc.startswith("https://rp.example/cb?tenant=7&")  # the registered query is kept
    q = query(loc)
    assert q["state"] == "a b&c=d" and q["iss"] == ISSUER and len(q["code"]) >= 43
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["referrer-policy"] == "no-referrer"  # RFC 9700 §4.2.4


async def test_no_session_sends_the_browser_to_login(client: httpx.AsyncClient, container: Services) -> None:
    web, _ = web_client(container)
    r = await client.get("/authorize", params=auth_params(web, pkce_pair()[1]))
    assert r.status_code == 302
    loc = r.headers["location"]
    assert loc.startswith(f"{ISSUER}/login?interaction=")
    pending = container.interactions.get(query(loc)["interaction"])
    assert pending is not None and pending.client_id == web.client_id


async def test_prompt_none_without_session_is_login_required(client: httpx.AsyncClient, container: Services) -> None:
    web, _ = web_client(container)
    params = auth_params(web, pkce_pair()[1], prompt="none")
    _error(await client.get("/authorize", params=params), "login_required", params["state"])


async def test_prompt_none_without_consent_is_consent_required(client: httpx.AsyncClient, container: Services) -> None:
    web, _ = web_client(container, first_party=False)
    sign_in_fast(container, client, make_user(container))
    params = auth_params(web, pkce_pair()[1], prompt="none")
    _error(await client.get("/authorize", params=params), "consent_required", params["state"])


async def test_third_party_client_asks_for_consent_once(client: httpx.AsyncClient, container: Services) -> None:
    web, _ = web_client(container, first_party=False)
    user = make_user(container)
    sign_in_fast(container, client, user)
    r = await client.get("/authorize", params=auth_params(web, pkce_pair()[1]))
    assert r.headers["location"].startswith(f"{ISSUER}/consent?interaction=")
    container.consents.grant(user.id, web.client_id, ["openid", "profile"])
    r = await client.get("/authorize", params=auth_params(web, pkce_pair()[1]))
    assert "code" in query(r.headers["location"])
    r = await client.get("/authorize", params=auth_params(web, pkce_pair()[1], prompt="consent"))
    assert r.headers["location"].startswith(f"{ISSUER}/consent?interaction=")  # prompt=consent asks again


async def test_prompt_login_and_max_age_force_a_new_login(client: httpx.AsyncClient, container: Services) -> None:
    web, _ = web_client(container)
    sign_in_fast(container, client, make_user(container))
    r = await client.get("/authorize", params=auth_params(web, pkce_pair()[1], prompt="login"))
    assert r.headers["location"].startswith(f"{ISSUER}/login?interaction=")
    container.clock.advance(120)
    r = await client.get("/authorize", params=auth_params(web, pkce_pair()[1], max_age="60"))
    assert r.headers["location"].startswith(f"{ISSUER}/login?interaction=")
    r = await client.get("/authorize", params=auth_params(web, pkce_pair()[1], max_age="600"))
    assert "code" in query(r.headers["location"])


async def test_malformed_query_gets_a_page(client: httpx.AsyncClient, container: Services) -> None:
    r = await client.get("/authorize?client_id=%ff%fe&redirect_uri=x")
    assert r.status_code == 400 and "location" not in r.headers
    r = await client.get("/authorize")
    assert r.status_code == 400 and "location" not in r.headers
    r = await client.post("/authorize", content=b"a=" + b"x" * 100, headers=FORM)
    assert r.status_code == 400


async def test_nul_bytes_are_refused_without_a_500(client: httpx.AsyncClient, container: Services) -> None:
    r = await client.get("/authorize?client_id=%00&redirect_uri=x&response_type=code")
    assert r.status_code == 400 and "location" not in r.headers
