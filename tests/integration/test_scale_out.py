"""Two idp instances over one PostgreSQL database and one Redis prefix behave as one server.

Each instance is its own container (engine, Redis connections, keyring cache, deny-list
snapshot, client cache) and its own app, exactly as two replicas behind a load balancer;
only the frozen clock is shared, so tests move time instead of sleeping. PostgreSQL +
Redis only: the embedded default is one process by design.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager

from idp.app import create_app
from idp.clock import FrozenClock
from idp.config import Settings
from idp.services import Services, build_services
from idp.tokens import jwt
from tests import oauthkit
from tests.adminkit import admin_client, mint
from tests.integration.resource_support import api_client, bearer, eventually, idp_server, protector_for
from tests.integration.resource_support import mint as mint_api_token
from tests.pagekit import make_user, session_value, sign_in

ISSUER = "https://idp.test"


@dataclass
class Instance:
    c: Services
    http: httpx.AsyncClient


@pytest.fixture
def pg(backend) -> None:
    if backend.name != "postgres":
        pytest.skip("scale-out needs PostgreSQL + Redis (the embedded default is a single process)")


@pytest.fixture
def second(pg, settings: Settings, clock: FrozenClock, container: Services) -> Iterator[Services]:
    """Instance 2's container; ``container`` (instance 1) truncated the tables first."""
    c2 = build_services(settings, clock=clock)
    try:
        yield c2
    finally:
        c2.close()


@pytest.fixture
async def two(
    pg: None, second: Services, client: httpx.AsyncClient, container: Services
) -> AsyncIterator[tuple[Instance, Instance]]:
    app2 = create_app(services=second)
    async with LifespanManager(app2) as manager:
        transport = httpx.ASGITransport(app=manager.app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http2:
            yield Instance(container, client), Instance(second, http2)


def kid_of(token: str) -> str:
    return orjson.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["kid"]


async def jwks_kids(inst: Instance) -> set[str]:
    return {k["kid"] for k in (await inst.http.get("/jwks.json")).json()["keys"]}


# -- codes and refresh tokens ----------------------------------------------------------------------
async def test_a_code_issued_by_one_is_redeemed_at_the_other_once(two) -> None:
    one, other = two
    user = oauthkit.make_user(one.c)
    web, secret = oauthkit.web_client(one.c)
    oauthkit.sign_in_fast(one.c, one.http, user)
    code, verifier, _ = await oauthkit.get_code(one.http, web)
    r = await oauthkit.exchange(other.http, web, secret, code, verifier)
    assert r.status_code == 200, r.text
    claims = jwt.verify(other.c.keyring, r.json()["access_token"], typ="at+jwt", issuer=ISSUER, audience=None,
                        now=other.c.clock.now())[1]  # fmt: skip
    assert claims["sub"] == user.id
    again = await oauthkit.exchange(one.http, web, secret, code, verifier)  # the code is spent everywhere
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


async def test_a_refresh_token_rotated_at_one_and_replayed_at_the_other_revokes_the_family(two, clock) -> None:
    one, other = two
    user = oauthkit.make_user(one.c)
    web, secret = oauthkit.web_client(one.c)
    first = await oauthkit.tokens_for(one.c, one.http, web, secret, user, scope="openid offline_access")
    r = await oauthkit.refresh(one.http, web, secret, first["refresh_token"])
    assert r.status_code == 200, r.text
    second = r.json()
    clock.advance(one.c.settings.refresh_grace_seconds + 1)
    replay = await oauthkit.refresh(other.http, web, secret, first["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    # RFC 9700 §4.14.2: the whole family is dead, at both instances.
    for inst in (one, other):
        r = await oauthkit.refresh(inst.http, web, secret, second["refresh_token"])
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    claims = jwt.verify(one.c.keyring, second["access_token"], typ="at+jwt", issuer=ISSUER, audience=None,
                        now=clock.now())[1]  # fmt: skip
    other.c.denylist.sync()
    one.c.denylist.sync()  # don't depend on pub/sub timing: both instances read the shared table
    assert one.c.denylist.is_denied(claims) and other.c.denylist.is_denied(claims)


# -- keys ------------------------------------------------------------------------------------------
async def test_key_rotation_at_either_instance_is_seen_by_both_and_never_outruns_a_jwks(two, clock) -> None:
    one, other = two
    alg = one.c.settings.access_token_alg
    headers = {"authorization": f"Bearer {mint(one.c, admin_client(one.c))}"}
    r = await one.http.post("/admin/keys/rotate", json={"alg": alg}, headers=headers)
    new_kid = r.json()["keys"][0]["kid"]
    lead = one.c.keyring.policy.publish_lead
    start = clock.now()
    seen_new_signing = set()
    # Walk through the whole rotation; at every step each instance's signer is in the OTHER's JWKS,
    # and a token signed at one verifies at the other.
    for t in (0, 1, 2.5, 5, lead / 2, lead - 1, lead, lead + 0.5, lead + 2, lead + 5, lead + 60):
        clock.advance(start + t - clock.now())
        for a, b in ((one, other), (other, one)):
            token = jwt.sign(a.c.keyring, alg, "at+jwt", {"iss": ISSUER, "aud": "x", "exp": clock.now() + 60,
                                                          "iat": clock.now()})  # fmt: skip
            if t >= 2.5:  # the JWKS (and keyring) caches re-read the database every 2 s
                assert new_kid in await jwks_kids(b)
            assert kid_of(token) in await jwks_kids(b), f"t={t}: signed by a key the other instance does not publish"
            jwt.verify(b.c.keyring, token, typ="at+jwt", issuer=ISSUER, audience="x", now=clock.now())
            if kid_of(token) == new_kid:
                seen_new_signing.add(id(a))
    assert seen_new_signing == {id(one), id(other)}  # both switched to the new key without a restart


async def test_two_instances_rotating_at_the_same_moment_end_with_one_keyring(pg, container, second) -> None:
    alg = "ES256"
    barrier = threading.Barrier(2)
    results: list[str] = []

    def rotate(c: Services) -> None:
        barrier.wait()
        results.append(c.keyring.rotate(alg).kid)

    container.keyring.tick()
    threads = [threading.Thread(target=rotate, args=(c,)) for c in (container, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 2 and results[0] == results[1]  # the second saw the first's pending key
    container.keyring.refresh(force=True)
    second.keyring.refresh(force=True)
    pending = [r for r in container.keyring.rows() if r.alg == alg and r.state == "next"]
    assert [r.kid for r in pending] == results[:1]
    assert {r.kid: r.state for r in container.keyring.rows()} == {r.kid: r.state for r in second.keyring.rows()}


async def test_two_instances_bootstrapping_an_empty_database_make_one_key_per_algorithm(pg, container, second) -> None:
    barrier = threading.Barrier(2)

    def tick(c: Services) -> None:
        barrier.wait()
        c.keyring.tick()

    threads = [threading.Thread(target=tick, args=(c,)) for c in (container, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    rows = container.keyring.rows()
    for alg in container.keyring.policy.algorithms:
        assert len([r for r in rows if r.alg == alg and r.state == "active"]) == 1


# -- sessions and throttling -----------------------------------------------------------------------
async def test_a_login_session_made_at_one_is_recognised_at_the_other(two) -> None:
    one, other = two
    make_user(one.c)
    assert (await sign_in(one.http)).status_code == 303
    cookie = session_value(one.http)
    r = await other.http.get("/account", headers={"cookie": f"__Host-idp-session={cookie}"})
    assert r.status_code == 200 and "alice" in r.text.lower()
    # ...and ended at the other: logout at instance 2 ends it for instance 1 too.
    assert other.c.login_sessions.end(cookie, actor="test", reason="logout")
    assert (await one.http.get("/account")).status_code in (302, 303)


async def test_throttling_counters_are_shared(two) -> None:
    one, other = two
    make_user(one.c)
    limit = one.c.settings.login_max_failures
    for i in range(limit - 1):
        inst = (one, other)[i % 2]
        assert (await sign_in(inst.http, password="wrong password")).status_code == 400
    assert (await sign_in(other.http, password="wrong password")).status_code == 429  # the limit-th, at either
    r = await sign_in(one.http)  # even the right password waits, at the other instance
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0


# -- deny-list -------------------------------------------------------------------------------------
@pytest.mark.parametrize("writer", [1, 2])
async def test_a_deny_list_entry_made_at_either_reaches_a_resource_server_following_the_other(
    pg, container: Services, second: Services, clock: FrozenClock, writer: int
) -> None:
    writes, followed = (container, second) if writer == 1 else (second, container)
    idp = await idp_server(followed).astart()  # the resource server follows only this instance
    try:
        token = mint_api_token(container, clock, sub="u1")
        async with api_client(protector_for(followed, idp.url, clock)) as api:
            assert (await api.get("/me", headers=bearer(token))).status_code == 200
            clock.advance(1)
            # The other instance writes: the entry travels through PostgreSQL + Redis pub/sub to the followed one.
            await asyncio.to_thread(writes.denylist.deny, "subject", "u1", reason="stolen phone", actor="admin:ops")

            async def refused() -> bool:
                return (await api.get("/me", headers=bearer(token))).status_code == 401

            await eventually(refused, 2.0, f"deny-list entry made at instance {writer} enforced via the other")
    finally:
        await idp.astop()


# -- clients ---------------------------------------------------------------------------------------
async def test_a_client_changed_at_one_is_changed_at_the_other_when_the_call_returns(two) -> None:
    one, other = two
    admin = bearer(mint(one.c, admin_client(one.c)))
    svc, secret = oauthkit.service_client(one.c)

    async def token(inst: Instance, secret: str) -> int:
        data = {"grant_type": "client_credentials"}
        return (await inst.http.post("/token", data=data, headers=oauthkit.basic(svc.client_id, secret))).status_code

    for _ in range(2):  # the other has it cached, on the inline path too; the frozen clock never expires that
        assert await token(other, secret) == 200
    new = (await one.http.post(f"/admin/clients/{svc.client_id}/secret", headers=admin)).json()["client_secret"]
    assert await token(other, secret) == 401
    assert await token(other, new) == 200
    r = await one.http.patch(f"/admin/clients/{svc.client_id}", json={"disabled": True}, headers=admin)
    assert r.status_code == 200
    assert await token(other, new) == 401


async def test_removing_idp_admin_from_a_client_at_one_ends_its_admin_access_at_the_other_at_once(two) -> None:
    one, other = two
    ops, root = admin_client(one.c, name="ops"), admin_client(one.c, name="root")
    ops_token = mint(one.c, ops)
    assert (await other.http.get("/admin/clients", headers=bearer(ops_token))).status_code == 200
    r = await one.http.patch(
        f"/admin/clients/{ops.client_id}",
        json={"scope": "api:read", "audience": one.c.settings.audience},  # ISSUER/admin is only for idp:admin
        headers=bearer(mint(one.c, root)),
    )
    assert r.status_code == 200
    assert (await other.http.get("/admin/clients", headers=bearer(ops_token))).status_code == 401
