"""DPoP (RFC 9449) at the IdP: the token endpoint binds tokens and refresh families to the proof's key, the
per-client and per-deployment requirements, ``dpop_jkt`` codes, the replay cache, nonces, userinfo's DPoP
scheme, introspection's ``cnf`` and revocation of bound tokens. Every test runs on both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select

from idp.app import create_app
from idp.clients.model import Client
from idp.clock import FrozenClock
from idp.config import Settings
from idp.ephemeral import StoreUnavailable
from idp.services import Services, build_services
from idp.store.dpop_replay import StoreReplayCache
from idp.store.models import GrantRow
from tests.dpopkit import DPoPKey
from tests.integration.test_revocation import claims_of
from tests.oauthkit import ISSUER, basic, get_code, make_user, native_client, service_client, sign_in_fast, web_client

TOKEN = f"{ISSUER}/token"
USERINFO = f"{ISSUER}/userinfo"
OFFLINE = "openid profile offline_access"


def dpop(c: Services, key: DPoPKey, htu: str = TOKEN, htm: str = "POST", **kw: Any) -> dict[str, str]:
    return {"dpop": key.proof(htm, htu, iat=kw.pop("iat", c.clock.now()), **kw)}


async def token_request(
    http: httpx.AsyncClient, client: Client, secret: str | None, data: dict[str, str], headers: dict[str, str]
) -> httpx.Response:
    auth = basic(client.client_id, secret) if secret else {}
    body = {**data} if secret else {**data, "client_id": client.client_id}
    return await http.post("/token", data=body, headers={**auth, **headers})


async def code_for(c: Services, http: httpx.AsyncClient, client: Client, **extra: str) -> tuple[str, str]:
    """A code from the browser the ``user`` fixture signed in."""
    code, verifier, _ = await get_code(http, client, scope=extra.pop("scope", OFFLINE), **extra)
    return code, verifier


async def exchange(
    c: Services,
    http: httpx.AsyncClient,
    client: Client,
    secret: str | None,
    headers: dict[str, str] | None,
    **extra: str,
) -> httpx.Response:
    code, verifier = await code_for(c, http, client, **extra)
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "redirect_uri": client.redirect_uris[0]}  # fmt: skip
    return await token_request(http, client, secret, data, headers or {})


async def refresh(
    http: httpx.AsyncClient, client: Client, secret: str | None, token: str, headers: dict[str, str] | None
) -> httpx.Response:
    return await token_request(http, client, secret, {"grant_type": "refresh_token", "refresh_token": token},
                               headers or {})  # fmt: skip


@pytest.fixture(autouse=True)
def user(client: httpx.AsyncClient, container: Services):
    """Signed in on ``client``'s browser for every test."""
    u = make_user(container)
    sign_in_fast(container, client, u)
    return u


@pytest.fixture
def key() -> DPoPKey:
    return DPoPKey("ES256")


@pytest.fixture
def native(container: Services, user) -> Client:
    return native_client(container)


# -- the token endpoint ----------------------------------------------------------------------------------------


async def test_a_proof_gives_a_dpop_token_bound_to_the_key(client, container: Services, native, key) -> None:
    r = await exchange(container, client, native, None, dpop(container, key))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "DPoP"  # RFC 9449 §5
    assert claims_of(body["access_token"])["cnf"] == {"jkt": key.jkt}  # RFC 9449 §6.1
    with container.sessions() as s:  # RFC 9449 §5: the public client's family is bound to the key
        assert s.scalars(select(GrantRow.jkt)).one() == key.jkt


async def test_without_a_proof_tokens_stay_bearer(client, container: Services, native) -> None:
    r = await exchange(container, client, native, None, None)
    assert r.status_code == 200 and r.json()["token_type"] == "Bearer"
    assert "cnf" not in claims_of(r.json()["access_token"])


@pytest.mark.parametrize(
    "bad",
    [
        {"htu": f"{ISSUER}/userinfo"},  # RFC 9449 §4.3 point 9
        {"htm": "GET"},  # point 8
        {"typ": "JWT"},  # point 4
        {"stale": True},  # point 11
    ],
)
async def test_an_invalid_proof_is_invalid_dpop_proof_and_spends_nothing(
    client, container: Services, native, key, bad: dict[str, Any]
) -> None:
    code, verifier = await code_for(container, client, native)
    if "typ" in bad:
        headers = dpop(container, key, header={"typ": bad["typ"]})
    elif "stale" in bad:
        headers = dpop(container, key, iat=container.clock.now() - 301)
    else:
        headers = dpop(container, key, htu=bad.get("htu", TOKEN), htm=bad.get("htm", "POST"))
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "redirect_uri": native.redirect_uris[0]}  # fmt: skip
    r = await token_request(client, native, None, data, headers)
    assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof", r.text  # RFC 9449 §5
    r = await token_request(client, native, None, data, dpop(container, key))  # the code is still good
    assert r.status_code == 200, r.text


async def test_two_dpop_headers_are_refused(client, container: Services, native, key) -> None:
    code, verifier = await code_for(container, client, native)
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "client_id": native.client_id,
            "redirect_uri": native.redirect_uris[0]}  # fmt: skip
    two = [("dpop", key.proof("POST", TOKEN, iat=container.clock.now())) for _ in range(2)]
    r = await client.post("/token", data=data, headers=httpx.Headers(two))
    assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"  # RFC 9449 §4.3 point 1


async def test_a_replayed_proof_is_refused(client, container: Services, native, key) -> None:
    headers = dpop(container, key)
    assert (await exchange(container, client, native, None, headers)).status_code == 200
    r = await exchange(container, client, native, None, headers)
    assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"  # RFC 9449 §11.1
    assert "used before" in r.json()["error_description"]


async def test_a_private_key_in_the_proof_is_refused(client, container: Services, native, key) -> None:
    r = await exchange(container, client, native, None, dpop(container, key, header={"jwk": key.private_jwk}))
    assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"  # RFC 9449 §4.3 point 7


async def test_client_credentials_with_a_proof(client, container: Services, key) -> None:
    svc, secret = service_client(container)
    r = await token_request(client, svc, secret, {"grant_type": "client_credentials"}, dpop(container, key))
    assert r.status_code == 200 and r.json()["token_type"] == "DPoP", r.text
    assert claims_of(r.json()["access_token"])["cnf"] == {"jkt": key.jkt}


# -- who must send a proof -------------------------------------------------------------------------------------


async def test_a_dpop_bound_client_gets_no_token_without_a_proof(client, container: Services, user, key) -> None:
    bound = native_client(container, dpop_bound_access_tokens=True)
    r = await exchange(container, client, bound, None, None)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"  # RFC 9449 §5.2, as node-oidc-provider
    assert "DPoP" in r.json()["error_description"]
    svc, secret = service_client(container, dpop_bound_access_tokens=True)
    r = await token_request(client, svc, secret, {"grant_type": "client_credentials"}, {})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = await token_request(client, svc, secret, {"grant_type": "client_credentials"}, dpop(container, key))
    assert r.status_code == 200 and r.json()["token_type"] == "DPoP"


class TestDeploymentDefault:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"dpop_required_for_public_clients": True}

    async def test_public_clients_need_a_proof_confidential_ones_do_not(
        self, client, container: Services, native, key
    ) -> None:
        r = await exchange(container, client, native, None, None)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"  # RFC 9449 §5.2
        assert (await exchange(container, client, native, None, dpop(container, key))).status_code == 200
        web, secret = web_client(container)
        r = await exchange(container, client, web, secret, None)
        assert r.status_code == 200 and r.json()["token_type"] == "Bearer"


# -- refresh ---------------------------------------------------------------------------------------------------


async def test_a_bound_family_refreshes_only_with_its_key(client, container: Services, native, key) -> None:
    first = (await exchange(container, client, native, None, dpop(container, key))).json()
    r = await refresh(client, native, None, first["refresh_token"], None)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"  # RFC 9449 §5: no proof
    r = await refresh(client, native, None, first["refresh_token"], dpop(container, DPoPKey("ES256")))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"  # RFC 9449 §5: another key
    r = await refresh(client, native, None, first["refresh_token"], dpop(container, key))
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["token_type"] == "DPoP" and claims_of(second["access_token"])["cnf"] == {"jkt": key.jkt}
    r = await refresh(client, native, None, second["refresh_token"], None)  # the successor is bound too
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert (await refresh(client, native, None, second["refresh_token"], dpop(container, key))).status_code == 200


async def test_an_unbound_public_family_is_bound_at_its_first_dpop_refresh(client, container: Services, native) -> None:
    key = DPoPKey("EdDSA")
    first = (await exchange(container, client, native, None, None)).json()
    assert first["token_type"] == "Bearer"
    second = (await refresh(client, native, None, first["refresh_token"], dpop(container, key))).json()
    assert second["token_type"] == "DPoP"  # RFC 9449 §5: issued to a DPoP request, so bound from here on
    r = await refresh(client, native, None, second["refresh_token"], None)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert (await refresh(client, native, None, second["refresh_token"], dpop(container, key))).status_code == 200


async def test_a_confidential_clients_family_is_not_bound(client, container: Services, user, key) -> None:
    web, secret = web_client(container)
    first = (await exchange(container, client, web, secret, dpop(container, key))).json()
    assert first["token_type"] == "DPoP"
    with container.sessions() as s:
        assert s.scalars(select(GrantRow.jkt)).one() is None  # RFC 9449 §5: bound to its credentials already
    r = await refresh(client, web, secret, first["refresh_token"], None)
    assert r.status_code == 200 and r.json()["token_type"] == "Bearer"


class TestBindingConfidentialFamilies:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"dpop_bind_confidential_refresh": True}

    async def test_refresh_needs_the_key(self, client, container: Services, user, key) -> None:
        web, secret = web_client(container)
        first = (await exchange(container, client, web, secret, dpop(container, key))).json()
        r = await refresh(client, web, secret, first["refresh_token"], None)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        assert (await refresh(client, web, secret, first["refresh_token"], dpop(container, key))).status_code == 200


# -- dpop_jkt (RFC 9449 §10) -----------------------------------------------------------------------------------


async def test_a_code_for_dpop_jkt_needs_that_key(client, container: Services, native, key) -> None:
    other = DPoPKey("EdDSA")
    for headers in (None, dpop(container, other)):
        r = await exchange(container, client, native, None, headers, dpop_jkt=key.jkt)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text  # RFC 9449 §10
    r = await exchange(container, client, native, None, dpop(container, key), dpop_jkt=key.jkt)
    assert r.status_code == 200 and claims_of(r.json()["access_token"])["cnf"] == {"jkt": key.jkt}


async def test_a_malformed_dpop_jkt_is_invalid_request(client, container: Services, native) -> None:
    from tests.oauthkit import auth_params, pkce_pair, query

    for bad in ("short", "x" * 44, "+" * 43):
        r = await client.get("/authorize", params=auth_params(native, pkce_pair()[1], dpop_jkt=bad))
        assert r.status_code == 302 and query(r.headers["location"])["error"] == "invalid_request", bad


# -- the replay cache -------------------------------------------------------------------------------------------


@pytest.fixture
def second(settings: Settings, clock: FrozenClock, container: Services) -> Iterator[Services]:
    """Another worker: with Redis its own container over the same store; embedded, the same in-process store."""
    c2 = build_services(settings, clock=clock, ephemeral=None if settings.redis_url else container.ephemeral)
    try:
        yield c2
    finally:
        if settings.redis_url:
            c2.close()


@pytest.fixture
async def http2(second: Services) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(create_app(services=second)) as manager:
        transport = httpx.ASGITransport(app=manager.app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
            yield http


async def test_a_proof_replayed_at_another_worker_is_refused(client, http2, container: Services, key) -> None:
    svc, secret = service_client(container)
    headers = dpop(container, key)
    r = await token_request(client, svc, secret, {"grant_type": "client_credentials"}, headers)
    assert r.status_code == 200, r.text
    r = await token_request(http2, svc, secret, {"grant_type": "client_credentials"}, headers)
    assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"  # RFC 9449 §11.1


class _Down:
    def put_if_absent(self, key: str, value: bytes, ttl: float) -> bool:
        raise StoreUnavailable("redis unavailable (SET: ConnectionError)")


async def test_an_unreachable_replay_cache_is_503_never_a_pass(
    client, container: Services, key, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(container.dpop, "replay", StoreReplayCache(_Down()))  # type: ignore[arg-type]
    svc, secret = service_client(container)
    r = await token_request(client, svc, secret, {"grant_type": "client_credentials"}, dpop(container, key))
    assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable"
    assert r.headers["retry-after"] == "1"


# -- nonces (RFC 9449 §8) ---------------------------------------------------------------------------------------


class TestNonces:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"dpop_nonces": True, "dpop_nonce_seconds": 60}

    async def test_use_dpop_nonce_then_the_nonce_works(self, client, container: Services, key) -> None:
        svc, secret = service_client(container)
        cc = {"grant_type": "client_credentials"}
        r = await token_request(client, svc, secret, cc, dpop(container, key))
        assert r.status_code == 400 and r.json()["error"] == "use_dpop_nonce"  # RFC 9449 §8
        nonce = r.headers["dpop-nonce"]
        r = await token_request(client, svc, secret, cc, dpop(container, key, nonce="made-up"))
        assert r.status_code == 400 and r.json()["error"] == "use_dpop_nonce"
        r = await token_request(client, svc, secret, cc, dpop(container, key, nonce=nonce))
        assert r.status_code == 200, r.text
        assert r.headers["dpop-nonce"] == nonce  # RFC 9449 §8.2: the nonce to use next, on success too

    async def test_nonces_rotate_and_agree_across_instances(
        self, client, http2, container: Services, second: Services, key
    ) -> None:
        assert container.dpop.nonces is not None and second.dpop.nonces is not None
        first = container.dpop.nonces.current()
        assert second.dpop.nonces.current() == first  # the same KEK: no shared state needed
        svc, secret = service_client(container)
        cc = {"grant_type": "client_credentials"}
        r = await token_request(http2, svc, secret, cc, dpop(container, key, nonce=first))
        assert r.status_code == 200, r.text
        container.clock.advance(60)
        assert second.dpop.nonces.current() != first and second.dpop.nonces.valid(first)  # the previous period
        r = await token_request(client, svc, secret, cc, dpop(container, key, nonce=first))
        assert r.status_code == 200, r.text
        container.clock.advance(60)
        r = await token_request(http2, svc, secret, cc, dpop(container, key, nonce=first))
        assert r.status_code == 400 and r.json()["error"] == "use_dpop_nonce"
        assert r.headers["dpop-nonce"] == container.dpop.nonces.current()

    async def test_userinfo_asks_for_a_nonce_with_401(self, client, container: Services, native, key) -> None:
        r = await exchange(container, client, native, None, dpop(container, key))
        r = await exchange(container, client, native, None, dpop(container, key, nonce=r.headers["dpop-nonce"]))
        at = r.json()["access_token"]
        r = await client.get(
            "/userinfo",
            headers={"authorization": f"DPoP {at}", **dpop(container, key, USERINFO, "GET", access_token=at)},
        )
        assert r.status_code == 401 and r.headers["dpop-nonce"]  # RFC 9449 §9
        assert r.headers["www-authenticate"].startswith('DPoP error="use_dpop_nonce"')
        headers = {
            "authorization": f"DPoP {at}",
            **dpop(container, key, USERINFO, "GET", access_token=at, nonce=r.headers["dpop-nonce"]),
        }
        assert (await client.get("/userinfo", headers=headers)).status_code == 200


# -- userinfo, introspection, revocation ---------------------------------------------------------------------------


@pytest.fixture
async def bound_at(client, container: Services, native, key) -> str:
    r = await exchange(container, client, native, None, dpop(container, key))
    assert r.status_code == 200, r.text
    return r.json()["access_token"]  # type: ignore[no-any-return]


def dpop_auth(c: Services, key: DPoPKey, at: str, **kw: Any) -> dict[str, str]:
    return {"authorization": f"DPoP {at}", **dpop(c, key, USERINFO, "GET", access_token=at, **kw)}


async def test_userinfo_with_the_dpop_scheme(client, container: Services, key, bound_at: str) -> None:
    r = await client.get("/userinfo", headers=dpop_auth(container, key, bound_at))
    assert r.status_code == 200 and r.json()["sub"], r.text
    headers = {"authorization": f"dpop {bound_at}", **dpop(container, key, USERINFO, "POST", access_token=bound_at)}
    assert (await client.post("/userinfo", headers=headers)).status_code == 200  # scheme case-insensitive


def _challenge(r: httpx.Response, error: str) -> None:
    assert r.status_code == 401, r.text
    assert r.json()["error"] == error
    assert r.headers["www-authenticate"].startswith(f'DPoP error="{error}"')  # RFC 9449 §7.1
    assert 'algs="ES256 RS256 PS256 EdDSA Ed25519"' in r.headers["www-authenticate"]


async def test_a_bound_token_as_bearer_is_refused(client, container: Services, key, bound_at: str) -> None:
    _challenge(await client.get("/userinfo", headers={"authorization": f"Bearer {bound_at}"}), "invalid_token")
    r = await client.post("/userinfo", data={"access_token": bound_at})  # RFC 9449 §7.2: nor in a form
    _challenge(r, "invalid_token")
    headers = {"authorization": f"Bearer {bound_at}", **dpop(container, key, USERINFO, "GET", access_token=bound_at)}
    _challenge(await client.get("/userinfo", headers=headers), "invalid_token")


async def test_userinfo_refuses_bad_proofs(client, container: Services, key, bound_at: str) -> None:
    _challenge(await client.get("/userinfo", headers={"authorization": f"DPoP {bound_at}"}), "invalid_dpop_proof")
    no_ath = {"authorization": f"DPoP {bound_at}", **dpop(container, key, USERINFO, "GET")}
    _challenge(await client.get("/userinfo", headers=no_ath), "invalid_dpop_proof")  # RFC 9449 §4.3 point 12
    wrong_ath = dpop_auth(container, key, bound_at, claims={"ath": "A" * 43})
    _challenge(await client.get("/userinfo", headers=wrong_ath), "invalid_dpop_proof")
    wrong_url = {"authorization": f"DPoP {bound_at}", **dpop(container, key, TOKEN, "GET", access_token=bound_at)}
    _challenge(await client.get("/userinfo", headers=wrong_url), "invalid_dpop_proof")
    # RFC 9449 §4.3 point 12: a good proof by another key is not the token's key
    _challenge(await client.get("/userinfo", headers=dpop_auth(container, DPoPKey(), bound_at)), "invalid_token")
    replayed = dpop_auth(container, key, bound_at)
    assert (await client.get("/userinfo", headers=replayed)).status_code == 200
    _challenge(await client.get("/userinfo", headers=replayed), "invalid_dpop_proof")  # RFC 9449 §11.1
    one, two = dpop_auth(container, key, bound_at), dpop_auth(container, key, bound_at)
    twice = [("authorization", one["authorization"]), ("dpop", one["dpop"]), ("dpop", two["dpop"])]
    _challenge(await client.get("/userinfo", headers=twice), "invalid_dpop_proof")  # §4.3 point 1, with 401


async def test_an_unbound_token_with_the_dpop_scheme_is_refused(client, container: Services, native, key) -> None:
    at = (await exchange(container, client, native, None, None)).json()["access_token"]
    r = await client.get("/userinfo", headers=dpop_auth(container, key, at))
    _challenge(r, "invalid_token")
    assert "not DPoP-bound" in r.json()["error_description"]
    assert (await client.get("/userinfo", headers={"authorization": f"Bearer {at}"})).status_code == 200


async def test_introspection_returns_cnf(client, container: Services, native, key) -> None:
    rs, rs_secret = service_client(container, audience=container.settings.audience)
    body = (await exchange(container, client, native, None, dpop(container, key))).json()
    r = await client.post("/introspect", data={"token": body["access_token"]}, headers=basic(rs.client_id, rs_secret))
    answer = r.json()
    assert answer["active"] and answer["cnf"] == {"jkt": key.jkt}  # RFC 9449 §6.2
    assert answer["token_type"] == "DPoP"


async def test_revoking_bound_tokens(client, container: Services, native, key) -> None:
    body = (await exchange(container, client, native, None, dpop(container, key))).json()
    at, rt = body["access_token"], body["refresh_token"]
    r = await client.post("/revoke", data={"token": at, "client_id": native.client_id})
    assert r.status_code == 200
    _challenge(await client.get("/userinfo", headers=dpop_auth(container, key, at)), "invalid_token")
    r = await client.post("/revoke", data={"token": rt, "client_id": native.client_id})
    assert r.status_code == 200
    r = await refresh(client, native, None, rt, dpop(container, key))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_discovery_names_the_proof_algorithms(client) -> None:
    doc = (await client.get("/.well-known/openid-configuration")).json()
    assert doc["dpop_signing_alg_values_supported"] == ["ES256", "RS256", "PS256", "EdDSA", "Ed25519"]  # RFC 9449 §5.1
