"""OAuth 2.0 Token Exchange (RFC 8693) at POST /token, on both backends: who may exchange what, for which
audience, the issued token (RFC 9068 + ``act``), and every cut-off reaching both the exchange and the tokens it
already issued (introspection and what an idp.resource follower of the deny-list sees)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from idp.clients.model import TOKEN_EXCHANGE, Client
from idp.clock import FrozenClock
from idp.denylist.denyset import DenySet
from idp.denylist.entries import DenyEntry
from idp.services import Services
from idp.tokens.jwt import peek_header
from tests.dpopkit import DPoPKey
from tests.integration.resource_support import feed_auth
from tests.integration.test_revocation import claims_of
from tests.oauthkit import ISSUER, basic, make_user, native_client, post_pairs, service_client, tokens_for, web_client
from tests.obskit import sample

GRANT = TOKEN_EXCHANGE
AT_TYPE = "urn:ietf:params:oauth:token-type:access_token"
UPSTREAM = "https://orders.example"
INVENTORY = "https://inventory.example"
TOKEN_URL = f"{ISSUER}/token"


def bff_client(c: Services, **kw: Any) -> tuple[Client, str]:
    """A confidential web client (the BFF) whose users' tokens it trades for tokens to UPSTREAM."""
    kw.setdefault("name", "BFF")
    kw.setdefault("grant_types", ["authorization_code", "refresh_token", GRANT])
    kw.setdefault("token_exchange_audiences", [UPSTREAM])
    return web_client(c, **kw)


def user_token(c: Services, client: Client, user_id: str, **kw: Any) -> str:
    """An access token as the authorization code grant mints it (signed by the keyring, our at+jwt)."""
    kw.setdefault("audience", [f"{ISSUER}/api", ISSUER])
    kw.setdefault("scope", "openid profile email")
    kw.setdefault("sid", "sid-1")
    kw.setdefault("auth_time", c.clock.now() - 5)
    kw.setdefault("amr", ["pwd"])
    kw.setdefault("acr", "urn:idp:acr:sfa")
    return c.access_tokens.issue(client_id=client.client_id, sub=user_id, **kw).token


def form(subject_token: str, **extra: str) -> dict[str, str]:
    data = {"grant_type": GRANT, "subject_token": subject_token, "subject_token_type": AT_TYPE}
    if "audience" not in extra and "resource" not in extra:
        data["audience"] = UPSTREAM
    data.update(extra)
    return {k: v for k, v in data.items() if v != ""}


async def token_exchange(
    http: httpx.AsyncClient, client: Client, secret: str, subject_token: str, **extra: Any
) -> httpx.Response:
    headers = {**basic(client.client_id, secret), **extra.pop("headers", {})}
    return await http.post("/token", data=form(subject_token, **extra), headers=headers)


def error_of(r: httpx.Response) -> str:
    assert r.headers["content-type"].startswith("application/json"), r.text
    body = r.json()
    assert set(body) <= {"error", "error_description"} and body.get("error_description"), body
    return str(body["error"])


async def alive(http: httpx.AsyncClient, c: Services, rs: Client, rs_secret: str, at: str) -> dict[str, bool]:
    """Whether ``at`` is active at introspection (asked by the resource server it names) and at an
    idp.resource server following the published deny-list."""
    r = await http.post("/introspect", data={"token": at}, headers=basic(rs.client_id, rs_secret))
    snapshot = (await http.get("/deny-list", auth=feed_auth(c))).json()
    follower = DenySet([DenyEntry.from_public(e) for e in snapshot["entries"]], snapshot["version"])
    _, claims = c.access_tokens.verify(at, audience=None)
    return {"introspection": r.json()["active"], "resource": not follower.is_denied(claims)}


WORKS = {"introspection": True, "resource": True}
DEAD = {"introspection": False, "resource": False}


@pytest.fixture
def bff(container: Services) -> tuple[Client, str]:
    return bff_client(container)


@pytest.fixture
def upstream(container: Services) -> tuple[Client, str]:
    """The resource server the exchanged tokens are for (introspects them)."""
    return service_client(container, name="Orders API", audience=UPSTREAM)


# -- the exchange and what it issues ---------------------------------------------------------------------------


async def test_a_users_token_becomes_a_short_token_for_the_upstream(
    client: httpx.AsyncClient, container: Services, bff, upstream
) -> None:
    app, secret = bff
    user = make_user(container)
    got = await tokens_for(container, client, app, secret, user, scope="openid profile")
    subject = claims_of(got["access_token"])
    r = await token_exchange(client, app, secret, got["access_token"])
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert set(body) == {"access_token", "issued_token_type", "token_type", "expires_in", "scope"}  # no refresh
    assert body["issued_token_type"] == AT_TYPE and body["token_type"] == "Bearer"  # RFC 8693 §2.2.1
    assert body["expires_in"] == container.settings.token_exchange_ttl == 300
    assert body["scope"] == subject["scope"] == "openid profile"
    header = peek_header(body["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256" and header["kid"]
    _, claims = container.access_tokens.verify(body["access_token"], audience=UPSTREAM)
    assert claims["aud"] == UPSTREAM and claims["sub"] == user.id and claims["client_id"] == app.client_id
    assert claims["act"] == {"sub": app.client_id, "client_id": app.client_id}  # RFC 8693 §4.1
    for name in ("sid", "auth_time", "acr", "amr"):
        assert claims[name] == subject[name], name
    assert claims["exp"] - claims["iat"] == 300 and claims["jti"] != subject["jti"]
    rs, rs_secret = upstream
    r = await client.post("/introspect", data={"token": body["access_token"]}, headers=basic(rs.client_id, rs_secret))
    seen = r.json()
    assert seen["active"] is True and seen["act"] == claims["act"] and seen["sub"] == user.id
    # Not usable where the subject token was: userinfo takes only tokens addressed to the issuer.
    r = await client.get("/userinfo", headers={"authorization": f"Bearer {body['access_token']}"})
    assert r.status_code == 401
    [event] = container.audit.query(action="token.exchanged")
    assert event.client_id == app.client_id and event.subject == user.id
    assert event.detail["audience"] == UPSTREAM and event.detail["jti"] == claims["jti"]
    metrics = container.metrics.render().decode()
    assert sample(metrics, "idp_tokens_issued_total", grant_type=GRANT, client_type="web") == 1  # its own label


async def test_discovery_lists_the_grant(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/.well-known/openid-configuration")).json()
    assert GRANT in doc["grant_types_supported"]


async def test_jwt_is_accepted_as_requested_type_and_others_are_invalid_request(
    client: httpx.AsyncClient, container: Services, bff
) -> None:
    app, secret = bff
    at = user_token(container, app, make_user(container).id)
    jwt_type = "urn:ietf:params:oauth:token-type:jwt"
    r = await token_exchange(client, app, secret, at, requested_token_type=jwt_type)
    assert r.status_code == 200 and r.json()["issued_token_type"] == AT_TYPE
    for bad in ("urn:ietf:params:oauth:token-type:refresh_token", "urn:ietf:params:oauth:token-type:id_token", "x"):
        r = await token_exchange(client, app, secret, at, requested_token_type=bad)
        assert r.status_code == 400 and error_of(r) == "invalid_request", bad


async def test_scope_only_narrows(client: httpx.AsyncClient, container: Services, bff) -> None:
    app, secret = bff
    at = user_token(container, app, make_user(container).id, scope="openid profile email")
    r = await token_exchange(client, app, secret, at, scope="profile")
    assert r.status_code == 200 and r.json()["scope"] == "profile"
    assert claims_of(r.json()["access_token"])["scope"] == "profile"
    for wider in ("profile offline_access", "api:write", "openid profile email admin"):
        r = await token_exchange(client, app, secret, at, scope=wider)
        assert r.status_code == 400 and error_of(r) == "invalid_scope", wider


async def test_the_token_never_outlives_its_subject(
    client: httpx.AsyncClient, container: Services, clock: FrozenClock, bff
) -> None:
    app, secret = bff
    at = user_token(container, app, make_user(container).id)
    subject_exp = claims_of(at)["exp"]
    clock.advance(container.settings.access_token_ttl - 100)  # 100 s left on the subject token
    r = await token_exchange(client, app, secret, at)
    assert r.status_code == 200, r.text
    assert r.json()["expires_in"] == 100 and claims_of(r.json()["access_token"])["exp"] == subject_exp
    clock.advance(101)  # expired now: not exchangeable
    r = await token_exchange(client, app, secret, at)
    assert r.status_code == 400 and error_of(r) == "invalid_request"


# -- who may exchange ------------------------------------------------------------------------------------------


async def test_only_authenticated_confidential_clients_registered_for_the_grant(
    client: httpx.AsyncClient, container: Services, bff
) -> None:
    app, secret = bff
    at = user_token(container, app, make_user(container).id)
    plain, plain_secret = web_client(container, name="Plain", token_exchange_audiences=[UPSTREAM])
    r = await token_exchange(client, plain, plain_secret, user_token(container, plain, "u1"))
    assert r.status_code == 400 and error_of(r) == "unauthorized_client"  # not registered for the grant
    public = native_client(container)
    r = await client.post("/token", data=form(at, client_id=public.client_id))
    assert r.status_code == 400 and error_of(r) == "unauthorized_client"  # a public client never
    r = await client.post("/token", data=form(at))
    assert r.status_code == 401 and error_of(r) == "invalid_client"  # no client authentication
    r = await token_exchange(client, app, "wrong", at)
    assert r.status_code == 401 and error_of(r) == "invalid_client"


async def test_a_token_of_another_client_not_addressed_to_this_one_is_refused(
    client: httpx.AsyncClient, container: Services, bff
) -> None:
    app, secret = bff
    other, _ = web_client(container, name="Other")
    theirs = user_token(container, other, make_user(container).id)  # aud: ISSUER/api and the issuer
    r = await token_exchange(client, app, secret, theirs)
    assert r.status_code == 400 and error_of(r) == "invalid_request"  # RFC 8693 §2.2.2


async def test_a_service_passes_a_token_it_received_on_and_act_nests(
    client: httpx.AsyncClient, container: Services, bff
) -> None:
    app, secret = bff
    user = make_user(container)
    orders, orders_secret = service_client(
        container, name="Orders", audience=UPSTREAM, grant_types=[GRANT], token_exchange_audiences=[INVENTORY]
    )
    first = await token_exchange(client, app, secret, user_token(container, app, user.id))
    assert first.status_code == 200, first.text
    received = first.json()["access_token"]  # aud UPSTREAM: the Orders API received it
    r = await token_exchange(client, orders, orders_secret, received, audience=INVENTORY)
    assert r.status_code == 200, r.text
    claims = claims_of(r.json()["access_token"])
    assert claims["aud"] == INVENTORY and claims["sub"] == user.id and claims["client_id"] == orders.client_id
    assert claims["act"] == {  # RFC 8693 §4.1: the current actor outermost, the prior one nested
        "sub": orders.client_id,
        "client_id": orders.client_id,
        "act": {"sub": app.client_id, "client_id": app.client_id},
    }
    # The Orders API may not exchange the BFF's token for an audience it is not registered for.
    r = await token_exchange(client, orders, orders_secret, received, audience=UPSTREAM)
    assert r.status_code == 400 and error_of(r) == "invalid_target"


async def test_an_actor_token_names_the_actor(client: httpx.AsyncClient, container: Services, bff) -> None:
    app, secret = bff
    agent, agent_secret = service_client(container, name="Agent", audience=UPSTREAM)
    orders, orders_secret = service_client(
        container, name="Orders", audience=UPSTREAM, grant_types=[GRANT], token_exchange_audiences=[INVENTORY]
    )
    user = make_user(container)
    received = (await token_exchange(client, app, secret, user_token(container, app, user.id))).json()["access_token"]
    r = await client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(agent.client_id, agent_secret)
    )
    actor = r.json()["access_token"]  # aud UPSTREAM: addressed to the Orders API
    r = await token_exchange(
        client, orders, orders_secret, received, audience=INVENTORY, actor_token=actor, actor_token_type=AT_TYPE
    )
    assert r.status_code == 200, r.text
    act = claims_of(r.json()["access_token"])["act"]
    assert act["sub"] == agent.client_id and act["client_id"] == orders.client_id
    assert act["act"] == {"sub": app.client_id, "client_id": app.client_id}
    # Both or neither, and of our access-token type; an actor token this client may not see is refused.
    r = await token_exchange(client, orders, orders_secret, received, audience=INVENTORY, actor_token=actor)
    assert r.status_code == 400 and error_of(r) == "invalid_request"
    r = await token_exchange(client, orders, orders_secret, received, audience=INVENTORY, actor_token_type=AT_TYPE)
    assert r.status_code == 400 and error_of(r) == "invalid_request"
    stranger, stranger_secret = service_client(container, name="Stranger", audience="https://else.example")
    foreign = (
        await client.post(
            "/token", data={"grant_type": "client_credentials"}, headers=basic(stranger.client_id, stranger_secret)
        )
    ).json()["access_token"]
    r = await token_exchange(
        client, orders, orders_secret, received, audience=INVENTORY, actor_token=foreign, actor_token_type=AT_TYPE
    )
    assert r.status_code == 400 and error_of(r) == "invalid_request"
    # A client's own token names no user: an actor, never a subject.
    r = await token_exchange(client, orders, orders_secret, actor, audience=INVENTORY)
    assert r.status_code == 400 and error_of(r) == "invalid_request"


# -- the target ------------------------------------------------------------------------------------------------


async def test_exactly_one_registered_target(client: httpx.AsyncClient, container: Services) -> None:
    app, secret = bff_client(container, token_exchange_audiences=[UPSTREAM, INVENTORY])
    at = user_token(container, app, make_user(container).id)
    auth = basic(app.client_id, secret)
    r = await token_exchange(client, app, secret, at, resource=INVENTORY)  # RFC 8707 resource works too
    assert r.status_code == 200 and claims_of(r.json()["access_token"])["aud"] == INVENTORY
    r = await token_exchange(client, app, secret, at, audience=UPSTREAM, resource=UPSTREAM)  # the same one
    assert r.status_code == 200
    base = [("grant_type", GRANT), ("subject_token", at), ("subject_token_type", AT_TYPE)]
    for extra in (
        [],  # none
        [("audience", "https://evil.example")],  # not registered
        [("audience", f"{ISSUER}/admin")],
        [("audience", UPSTREAM), ("resource", INVENTORY)],  # two
        [("resource", UPSTREAM), ("resource", INVENTORY)],
        [("audience", "x" * 5000)],
    ):
        r = await post_pairs(client, "/token", [*base, *extra], auth)
        assert r.status_code == 400 and error_of(r) == "invalid_target", extra


# -- malformed input -------------------------------------------------------------------------------------------


async def test_malformed_requests_are_rfc_errors(client: httpx.AsyncClient, container: Services, bff) -> None:
    app, secret = bff
    at = user_token(container, app, make_user(container).id)
    auth = basic(app.client_id, secret)
    cases: list[dict[str, str]] = [
        {"grant_type": GRANT, "audience": UPSTREAM},  # no subject token
        {"grant_type": GRANT, "subject_token": at, "audience": UPSTREAM},  # no subject_token_type
        {"grant_type": GRANT, "subject_token_type": AT_TYPE, "audience": UPSTREAM},
        form(at, subject_token_type="urn:ietf:params:oauth:token-type:id_token"),
        form(at, subject_token_type="urn:ietf:params:oauth:token-type:refresh_token"),
        form("not-a-token"),
        form("a.b.c"),
        form("e30.e30." + "A" * 40),
        form(at[:-4] + ("AAAA" if not at.endswith("AAAA") else "BBBB")),  # bad signature
        form("x" * 20_000),  # huge
        form("a\x00b.c.d"),  # NUL (PostgreSQL refuses it in a query: never a 500)
        form(at, audience=UPSTREAM + "\x00"),
        form(at + "." + at),
    ]
    for data in cases:
        r = await client.post("/token", data=data, headers=auth)
        assert r.status_code in (400, 413), (data, r.text)
        if r.status_code == 400:
            assert error_of(r) == "invalid_request", (data, r.text)
    r = await post_pairs(client, "/token", [*form(at).items(), ("subject_token", at)], auth)
    assert r.status_code == 400 and error_of(r) == "invalid_request"  # repeated


async def test_other_kinds_of_our_tokens_are_not_subject_tokens(
    client: httpx.AsyncClient, container: Services, bff
) -> None:
    app, secret = bff
    user = make_user(container)
    got = await tokens_for(container, client, app, secret, user, scope="openid offline_access")
    for token in (got["id_token"], got["refresh_token"]):
        r = await token_exchange(client, app, secret, token)
        assert r.status_code == 400 and error_of(r) == "invalid_request"


# -- DPoP-bound subject tokens ---------------------------------------------------------------------------------


async def test_a_bound_subject_needs_a_proof_by_its_key_and_stays_bound(
    client: httpx.AsyncClient, container: Services, bff
) -> None:
    app, secret = bff
    key, other = DPoPKey(), DPoPKey()
    at = user_token(container, app, make_user(container).id, jkt=key.jkt)
    r = await token_exchange(client, app, secret, at)
    assert r.status_code == 400 and error_of(r) == "invalid_request"  # no proof: never a bearer copy
    proof = {"dpop": other.proof("POST", TOKEN_URL, iat=container.clock.now())}
    r = await token_exchange(client, app, secret, at, headers=proof)
    assert r.status_code == 400 and error_of(r) == "invalid_request"  # another key
    proof = {"dpop": key.proof("POST", TOKEN_URL, iat=container.clock.now())}
    r = await token_exchange(client, app, secret, at, headers=proof)
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "DPoP" and claims_of(r.json()["access_token"])["cnf"] == {"jkt": key.jkt}


# -- cut-offs --------------------------------------------------------------------------------------------------


async def test_sign_out_everywhere_stops_the_exchange_and_kills_exchanged_tokens(
    client: httpx.AsyncClient, container: Services, clock: FrozenClock, bff, upstream
) -> None:
    app, secret = bff
    rs, rs_secret = upstream
    user, bystander = make_user(container), make_user(container, "bob")
    got = await tokens_for(container, client, app, secret, user, scope="openid profile")
    exchanged = (await token_exchange(client, app, secret, got["access_token"])).json()["access_token"]
    theirs = (await token_exchange(client, app, secret, user_token(container, app, bystander.id))).json()
    assert await alive(client, container, rs, rs_secret, exchanged) == WORKS
    clock.advance(1)
    container.account.sign_out_everywhere(user.id)
    assert await alive(client, container, rs, rs_secret, exchanged) == DEAD  # already exchanged: dead too
    r = await token_exchange(client, app, secret, got["access_token"])
    assert r.status_code == 400 and error_of(r) == "invalid_request"
    assert await alive(client, container, rs, rs_secret, theirs["access_token"]) == WORKS  # only that user's


async def test_a_deny_listed_subject_token_is_not_exchanged(
    client: httpx.AsyncClient, container: Services, bff
) -> None:
    app, secret = bff
    at = user_token(container, app, make_user(container).id)
    container.denylist.deny("jti", claims_of(at)["jti"], reason="revoked", actor="test")
    r = await token_exchange(client, app, secret, at)
    assert r.status_code == 400 and error_of(r) == "invalid_request"


async def test_disabled_clients_and_users_end_the_exchange(
    client: httpx.AsyncClient, container: Services, clock: FrozenClock, bff, upstream
) -> None:
    app, secret = bff
    rs, rs_secret = upstream
    orders, orders_secret = service_client(
        container, name="Orders", audience=UPSTREAM, grant_types=[GRANT], token_exchange_audiences=[INVENTORY]
    )
    user = make_user(container)
    received = (await token_exchange(client, app, secret, user_token(container, app, user.id))).json()["access_token"]
    # The subject token's client is disabled: its tokens, exchanged or not, are no longer exchangeable.
    container.client_admin.set_disabled(app.client_id, True, actor="test")
    assert await alive(client, container, rs, rs_secret, received) == DEAD
    r = await token_exchange(client, orders, orders_secret, received, audience=INVENTORY)
    assert r.status_code == 400 and error_of(r) == "invalid_request"
    r = await token_exchange(client, app, secret, user_token(container, app, user.id))
    assert r.status_code == 401 and error_of(r) == "invalid_client"  # the exchanging client itself
    # A disabled user: the exchange fails, and what was exchanged for them dies.
    other, other_secret = bff_client(container, name="BFF 2")
    at = user_token(container, other, user.id)
    exchanged = (await token_exchange(client, other, other_secret, at)).json()["access_token"]
    assert await alive(client, container, rs, rs_secret, exchanged) == WORKS
    clock.advance(1)
    container.user_admin.set_disabled(user.username, True, actor="test")
    assert (await alive(client, container, rs, rs_secret, exchanged))["introspection"] is False
    r = await token_exchange(client, other, other_secret, at)
    assert r.status_code == 400 and error_of(r) == "invalid_request"
