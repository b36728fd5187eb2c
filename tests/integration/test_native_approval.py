"""RFC 8252 §8.6: a public client's loopback or private-use redirect is approved once per login session.

Any program on the device can start a flow for a native client on its own loopback port; a signed-in
browser must not hand it a code without the person seeing where it goes. The approval is per session
and per exact redirect URI (port included); an ``https`` redirect (a web origin, or a claimed link,
RFC 8252 §7.2) and confidential clients need none.
"""

from __future__ import annotations

import httpx
import pytest

from idp.clients.model import Client
from idp.services import Services
from idp.sessions.consents import RedirectApprovals, needs_session_approval
from idp.users.directory import User
from tests.oauthkit import (
    ISSUER,
    auth_params,
    continue_on_page,
    make_user,
    native_client,
    pkce_pair,
    query,
    sign_in_fast,
    web_client,
)

PORT_A = "http://127.0.0.1:51234/callback"
PORT_B = "http://127.0.0.1:51235/callback"


@pytest.fixture
def alice(container: Services) -> User:
    return make_user(container)


async def _authorize(http: httpx.AsyncClient, app: Client, uri: str, **extra: str) -> httpx.Response:
    return await http.get("/authorize", params=auth_params(app, pkce_pair()[1], redirect_uri=uri, **extra))


async def test_prompt_none_for_an_unapproved_loopback_port_is_consent_required(
    client: httpx.AsyncClient, container: Services, alice: User
) -> None:
    native = native_client(container)  # first party: trusted, but not proven to be the caller
    sign_in_fast(container, client, alice)
    r = await _authorize(client, native, PORT_A, prompt="none")
    assert r.headers["location"].startswith(PORT_A + "?")
    q = query(r.headers["location"])
    assert q["error"] == "consent_required" and "code" not in q and q["iss"] == ISSUER, q


async def test_continue_once_then_that_port_alone_is_silent(
    client: httpx.AsyncClient, container: Services, alice: User
) -> None:
    native = native_client(container)
    sign_in_fast(container, client, alice)
    r = await _authorize(client, native, PORT_A)
    assert r.headers["location"].startswith(f"{ISSUER}/consent?interaction="), r.headers["location"]
    page = await client.get(r.headers["location"])
    assert "Continue to" in page.text and PORT_A in page.text  # the person sees where the sign-in goes
    r = await continue_on_page(client, r.headers["location"])
    assert r.headers["location"].startswith(PORT_A + "?") and "code" in query(r.headers["location"])
    assert container.consents.list_for_user(alice.id) == []  # first party: nothing remembered beyond the session
    # Approved in this session: silent now, for exactly this URI.
    assert "code" in query((await _authorize(client, native, PORT_A, prompt="none")).headers["location"])
    q = query((await _authorize(client, native, PORT_B, prompt="none")).headers["location"])
    assert q["error"] == "consent_required", q
    # A new session starts with no approvals.
    sign_in_fast(container, client, alice)
    q = query((await _authorize(client, native, PORT_A, prompt="none")).headers["location"])
    assert q["error"] == "consent_required", q


async def test_an_approval_is_kept_only_for_the_rest_of_its_session(
    client: httpx.AsyncClient, container: Services, alice: User
) -> None:
    """Each new port is a new approval: none may outlive the session it belongs to (its absolute expiry)."""
    native = native_client(container)
    sid = sign_in_fast(container, client, alice)
    session = container.login_sessions.get_by_sid(sid)
    assert session is not None
    container.clock.advance(10 * 86_400)  # within the idle lifetime: the session is alive, 10 days older
    r = await continue_on_page(client, (await _authorize(client, native, PORT_A)).headers["location"])
    assert "code" in query(r.headers["location"])
    left = session.absolute_expires_at - container.clock.now()
    ttl = container.ephemeral.ttl(RedirectApprovals._key(sid, native.client_id, PORT_A))
    assert ttl is not None and left - 60 < ttl <= left, (ttl, left)


async def test_cancel_on_the_continue_page_is_access_denied(
    client: httpx.AsyncClient, container: Services, alice: User
) -> None:
    native = native_client(container)
    sign_in_fast(container, client, alice)
    r = await _authorize(client, native, PORT_A)
    r = await continue_on_page(client, r.headers["location"], decision="deny")
    assert query(r.headers["location"])["error"] == "access_denied"
    q = query((await _authorize(client, native, PORT_A, prompt="none")).headers["location"])
    assert q["error"] == "consent_required", q


async def test_remembered_consent_does_not_cover_a_new_port(
    client: httpx.AsyncClient, container: Services, alice: User
) -> None:
    native = native_client(container, first_party=False)
    container.consents.grant(alice.id, native.client_id, ["openid", "profile"])  # consented in the past
    sign_in_fast(container, client, alice)
    q = query((await _authorize(client, native, PORT_A, prompt="none")).headers["location"])
    assert q["error"] == "consent_required", q
    r = await _authorize(client, native, PORT_A)
    page = await client.get(r.headers["location"])
    assert "wants to access your account" in page.text and PORT_A in page.text
    r = await continue_on_page(client, r.headers["location"])
    assert "code" in query(r.headers["location"])
    assert "code" in query((await _authorize(client, native, PORT_A, prompt="none")).headers["location"])


async def test_private_use_scheme_is_approved_too(client: httpx.AsyncClient, container: Services, alice: User) -> None:
    native = native_client(container, redirect_uris=["com.example.app:/oauth"])
    sign_in_fast(container, client, alice)
    q = query((await _authorize(client, native, "com.example.app:/oauth", prompt="none")).headers["location"])
    assert q["error"] == "consent_required", q


async def test_https_and_confidential_clients_need_no_approval(
    client: httpx.AsyncClient, container: Services, alice: User
) -> None:
    claimed = native_client(container, redirect_uris=["https://app.example/oauth"])  # RFC 8252 §7.2
    web, _ = web_client(container, redirect_uris=["https://rp.example/cb"])
    sign_in_fast(container, client, alice)
    for app in (claimed, web):
        q = query((await _authorize(client, app, app.redirect_uris[0], prompt="none")).headers["location"])
        assert "code" in q, q


@pytest.mark.parametrize(
    ("kind", "uri", "needed"),
    [
        ("native", "http://127.0.0.1:8080/cb", True),
        ("native", "http://[::1]:8080/cb", True),
        ("native", "com.example.app:/cb", True),
        ("native", "https://app.example/cb", False),
        ("web", "https://rp.example/cb", False),
    ],
)
def test_which_redirects_need_approval(container: Services, kind: str, uri: str, needed: bool) -> None:
    if kind == "native":
        app = native_client(container, redirect_uris=[uri])
    else:
        app, _ = web_client(container, redirect_uris=[uri])
    assert needs_session_approval(app, uri) is needed
