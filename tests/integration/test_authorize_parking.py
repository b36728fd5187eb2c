"""What an authorization request may make us store: only the parameters the flow uses, each bounded, one
record of at most 8 KiB, and at most ``authorize_pending_per_ip`` waiting records per client IP (429 beyond)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from idp import interaction
from idp.interaction import INTERACTION_TTL, TooManyPending
from idp.services import Services
from tests.oauthkit import (
    ISSUER,
    auth_params,
    continue_on_page,
    make_user,
    pkce_pair,
    query,
    sign_in_fast,
    web_client,
)
from tests.pagekit import sign_in

CAP = 3


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"authorize_pending_per_ip": CAP}


def _parked(c: Services, location: str) -> bytes:
    raw = c.ephemeral.get(f"interaction:{query(location)['interaction']}")
    assert raw is not None
    return raw


@contextlib.asynccontextmanager
async def _from(app: object, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(ip, 40_000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER, follow_redirects=False) as http:
        yield http


async def test_a_60_kb_request_parks_under_4_kb(client: httpx.AsyncClient, container: Services) -> None:
    web, _ = web_client(container)
    params = auth_params(web, pkce_pair()[1], nonce="n-1", login_hint="alice")
    junk = "&".join(f"x{i}={'j' * 7600}" for i in range(8))  # unknown parameters: ignored, never stored
    r = await client.get("/authorize?" + str(httpx.QueryParams(params)) + "&" + junk)
    assert len(str(r.request.url)) > 60_000
    assert r.headers["location"].startswith(f"{ISSUER}/login?interaction=")
    raw = _parked(container, r.headers["location"])
    assert len(raw) < 4096, len(raw)
    pending = container.interactions.get(query(r.headers["location"])["interaction"])
    assert pending is not None and pending.params == params  # exactly the parameters the flow reads


@pytest.mark.parametrize(
    ("name", "bound"),
    [("state", 2048), ("nonce", 512), ("login_hint", 256), ("prompt", 64), ("max_age", 16), ("scope", 2048)],
)
async def test_each_parameter_has_a_bound(
    client: httpx.AsyncClient, container: Services, name: str, bound: int
) -> None:
    web, _ = web_client(container)
    fits = {"state": "s", "nonce": "n", "login_hint": "h", "prompt": " ", "max_age": "0", "scope": " "}[name]
    ok = await client.get("/authorize", params=auth_params(web, pkce_pair()[1], **{name: fits * bound}))
    assert "error" not in query(ok.headers["location"]), ok.headers["location"]
    r = await client.get("/authorize", params=auth_params(web, pkce_pair()[1], **{name: fits * (bound + 1)}))
    assert r.status_code == 302
    q = query(r.headers["location"])
    assert r.headers["location"].startswith(web.redirect_uris[0] + "?")  # RFC 6749 §4.1.2.1: redirected
    assert q["error"] == "invalid_request" and name in q["error_description"] and q["iss"] == ISSUER
    assert len(r.headers["location"]) < 1024  # an over-long state is not reflected


async def test_an_over_bound_parameter_with_an_unknown_client_is_our_page(client: httpx.AsyncClient) -> None:
    r = await client.get(
        "/authorize", params={"client_id": "nobody", "redirect_uri": "https://rp.example/cb", "state": "s" * 3000}
    )
    assert r.status_code == 400 and "location" not in r.headers


async def test_a_record_over_the_cap_is_invalid_request(
    app: object, container: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    web, _ = web_client(container)
    monkeypatch.setattr(interaction, "MAX_RECORD", 1500)  # every field within its bound, the sum not
    async with _from(app, "203.0.113.8") as http:
        for _ in range(CAP + 1):
            big = auth_params(web, pkce_pair()[1], state="s" * 1200, nonce="n" * 500)
            q = query((await http.get("/authorize", params=big)).headers["location"])
            assert q["error"] == "invalid_request" and q["iss"] == ISSUER, q
            assert q["state"] == big["state"]  # within its bound: echoed (RFC 6749 §4.1.2.1)
        for _ in range(CAP):  # refused before it counted against the address
            r = await http.get("/authorize", params=auth_params(web, pkce_pair()[1]))
            assert r.headers["location"].startswith(f"{ISSUER}/login?"), r.headers["location"]


async def test_pending_records_per_ip_are_capped(app: object, container: Services) -> None:
    web, _ = web_client(container)
    async with _from(app, "203.0.113.7") as http:
        for _ in range(CAP):
            r = await http.get("/authorize", params=auth_params(web, pkce_pair()[1]))
            assert r.headers["location"].startswith(f"{ISSUER}/login?"), r.headers.get("location")
        r = await http.get("/authorize", params=auth_params(web, pkce_pair()[1]))
        assert r.status_code == 429 and "location" not in r.headers
        assert 1 <= int(r.headers["retry-after"]) <= INTERACTION_TTL
        # A signed-in browser that needs no page parks nothing and is not limited.
        sign_in_fast(container, http, make_user(container))
        assert "code" in query(
            (await http.get("/authorize", params=auth_params(web, pkce_pair()[1]))).headers["location"]
        )
    async with _from(app, "198.51.100.9") as other:  # another address has its own allowance
        r = await other.get("/authorize", params=auth_params(web, pkce_pair()[1]))
        assert r.headers["location"].startswith(f"{ISSUER}/login?")
    container.clock.advance(2 * INTERACTION_TTL)  # every record counted has expired
    async with _from(app, "203.0.113.7") as http:
        r = await http.get("/authorize", params=auth_params(web, pkce_pair()[1]))
        assert r.headers["location"].startswith(f"{ISSUER}/login?")


async def test_the_cap_holds_across_a_window_boundary(container: Services) -> None:
    """Records live one window, so the previous window's count still holds until they expire."""
    now = container.clock.now()
    container.clock.advance(INTERACTION_TTL - now % INTERACTION_TTL - 1)  # the last second of a window
    for _ in range(CAP):
        container.interactions.reserve("192.0.2.1")
    container.clock.advance(2)  # the next window: those records are still alive
    with pytest.raises(TooManyPending):
        container.interactions.reserve("192.0.2.1")


async def test_the_cap_holds_under_concurrency(container: Services) -> None:
    def attempt(_: int) -> bool:
        try:
            container.interactions.reserve("192.0.2.2")
            return True
        except TooManyPending:
            return False

    with ThreadPoolExecutor(max_workers=12) as pool:
        admitted = await asyncio.get_running_loop().run_in_executor(None, lambda: list(pool.map(attempt, range(40))))
    assert sum(admitted) == CAP


async def _park(http: httpx.AsyncClient, params: dict[str, str]) -> str:
    r = await http.get("/authorize", params=params)
    location = r.headers.get("location", "")
    assert location.startswith((f"{ISSUER}/login?", f"{ISSUER}/consent?")), (r.status_code, location)
    return location


async def test_a_finished_sign_in_gives_its_place_back(app: object, container: Services) -> None:
    """The cap bounds live records: each completed sign-in frees its place, so one address signs in any
    number of times (more than the cap) within one window."""
    web, _ = web_client(container)
    make_user(container)
    async with _from(app, "203.0.113.20") as http:
        for _ in range(CAP + 2):
            login = await _park(http, auth_params(web, pkce_pair()[1], prompt="login"))
            done = await sign_in(http, interaction=query(login)["interaction"])
            assert done.status_code == 303, done.text[:300]
            r = await http.get(done.headers["location"])
            assert "code" in query(r.headers["location"]), r.headers.get("location")


async def test_a_denied_consent_gives_its_place_back(app: object, container: Services) -> None:
    third, _ = web_client(container, first_party=False)
    async with _from(app, "203.0.113.21") as http:
        sign_in_fast(container, http, make_user(container))
        for _ in range(CAP + 2):
            page = await _park(http, auth_params(third, pkce_pair()[1]))
            assert page.startswith(f"{ISSUER}/consent?")
            r = await continue_on_page(http, page, "deny")
            assert query(r.headers["location"])["error"] == "access_denied"


async def test_a_sign_in_parked_again_for_consent_keeps_its_place(app: object, container: Services) -> None:
    third, _ = web_client(container, first_party=False)
    make_user(container)
    async with _from(app, "203.0.113.22") as http:
        login = await _park(http, auth_params(third, pkce_pair()[1]))
        done = await sign_in(http, interaction=query(login)["interaction"])
        consent = (await http.get(done.headers["location"])).headers["location"]
        assert consent.startswith(f"{ISSUER}/consent?")  # the same record, parked again: still live
        http.cookies.clear()
        for _ in range(CAP - 1):
            await _park(http, auth_params(third, pkce_pair()[1]))
        r = await http.get("/authorize", params=auth_params(third, pkce_pair()[1]))
        assert r.status_code == 429


async def test_an_ipv6_network_shares_one_allowance(container: Services) -> None:
    """Anyone holding an IPv6 /64 has 2^64 addresses: the cap counts the /64 (an IPv4 address by itself)."""
    for i in range(CAP):
        container.interactions.reserve(f"2001:db8:5:6::{i + 1:x}")
    with pytest.raises(TooManyPending):
        container.interactions.reserve("2001:db8:5:6:ffff:ffff:ffff:ffff")
    container.interactions.reserve("2001:db8:5:7::1")  # the next /64 is someone else
    for _ in range(CAP):
        container.interactions.reserve("::ffff:192.0.2.30")
    with pytest.raises(TooManyPending):  # an IPv4-mapped address is that IPv4 address
        container.interactions.reserve("192.0.2.30")
    container.interactions.reserve("192.0.2.31")
