"""Client and subject cut-offs as the IdP writes them: the exact instant, and "every token" for a client that is off."""

from __future__ import annotations

import httpx

from idp.clients.model import Client
from idp.clock import FrozenClock
from idp.denylist.denyset import DenySet
from idp.denylist.entries import DenyEntry
from idp.services import Services
from tests.adminkit import AdminApi, admin_client, mint
from tests.integration.resource_support import feed_auth
from tests.oauthkit import make_user, refresh, service_client, tokens_for, web_client


async def where_it_counts(
    client: httpx.AsyncClient, container: Services, app: Client, secret: str, at: str
) -> dict[str, bool]:
    """Whether the access token works at userinfo, at introspection and at an idp.resource server."""
    userinfo = (await client.get("/userinfo", headers={"authorization": f"Bearer {at}"})).status_code == 200
    r = await client.post("/introspect", data={"token": at}, auth=httpx.BasicAuth(app.client_id, secret))
    snapshot = (await client.get("/deny-list", auth=feed_auth(container))).json()  # what a follower loads
    follower = DenySet([DenyEntry.from_public(e) for e in snapshot["entries"]], snapshot["version"])
    header, claims = container.access_tokens.verify(at, audience=None)
    return {"userinfo": userinfo, "introspection": r.json()["active"], "resource": not follower.is_denied(claims)}


WORKS = {"userinfo": True, "introspection": True, "resource": True}
DEAD = {"userinfo": False, "introspection": False, "resource": False}


async def test_a_cut_off_denies_tokens_issued_earlier_in_its_own_second(
    client: httpx.AsyncClient, container: Services, clock: FrozenClock
) -> None:
    app, secret = web_client(container)
    user = make_user(container)
    clock.advance(0.2)  # e.g. a thief refreshing a stolen session at T + 0.2: iat T
    got = await tokens_for(container, client, app, secret, user, scope="openid offline_access")
    assert await where_it_counts(client, container, app, secret, got["access_token"]) == WORKS
    clock.advance(0.5)  # "sign out everywhere" (or disabling the user, ...) at T + 0.7
    container.denylist.deny("subject", user.id, reason="sign out everywhere", actor="test")
    [entry] = [e for e in container.denylist.list() if e.kind == "subject"]
    assert entry.not_before == clock.now()  # the instant, not its second
    assert await where_it_counts(client, container, app, secret, got["access_token"]) == DEAD
    # The refresh token too (its row's fractional created_at, compared exactly), at introspection and /token.
    r = await client.post(
        "/introspect", data={"token": got["refresh_token"]}, auth=httpx.BasicAuth(app.client_id, secret)
    )
    assert r.json() == {"active": False}
    assert (await refresh(client, app, secret, got["refresh_token"])).json()["error"] == "invalid_grant"


async def test_signing_in_again_in_the_second_of_sign_out_everywhere_gives_a_working_token(
    client: httpx.AsyncClient, container: Services, clock: FrozenClock
) -> None:
    app, secret = web_client(container)
    user = make_user(container)
    old = await tokens_for(container, client, app, secret, user, scope="openid offline_access")
    clock.advance(1.7)  # a fraction into a second: T + 0.7
    container.denylist.deny("subject", user.id, reason="sign out everywhere", actor="test")
    clock.advance(0.2)  # the same second, after the cut-off: T + 0.9
    new = await tokens_for(container, client, app, secret, user, scope="openid offline_access")
    claims = container.access_tokens.verify(new["access_token"], audience=None)[1]
    assert claims["iat"] == int(clock.now()) + 1  # stamped past the cut-off, 0.1 s ahead of now
    assert await where_it_counts(client, container, app, secret, new["access_token"]) == WORKS
    assert await where_it_counts(client, container, app, secret, old["access_token"]) == DEAD
    # Its refresh token works, and so does the access token that refresh mints in that same second.
    fresh = (await refresh(client, app, secret, new["refresh_token"])).json()
    assert await where_it_counts(client, container, app, secret, fresh["access_token"]) == WORKS


async def test_a_disabled_clients_entry_covers_tokens_issued_after_it_until_enabled_again(
    client: httpx.AsyncClient, container: Services, clock: FrozenClock
) -> None:
    api = AdminApi(client, {"authorization": f"Bearer {mint(container, admin_client(container))}"})
    svc, _ = service_client(container)
    cid = svc.client_id
    assert (await api.patch(f"/admin/clients/{cid}", json={"disabled": True})).status_code == 200
    clock.advance(30)
    stale = {"sub": cid, "client_id": cid, "iat": int(clock.now())}  # what a worker with a stale copy would issue
    assert container.denylist.is_denied(stale)
    assert container.denylist.is_denied(stale | {"iat": int(clock.now()) + 500})  # until the entry expires

    clock.advance(1)
    assert (await api.patch(f"/admin/clients/{cid}", json={"disabled": False})).status_code == 200
    clock.advance(1)
    assert not container.denylist.is_denied(stale | {"iat": int(clock.now())})  # issued after enabling: works
    assert container.denylist.is_denied(stale)  # issued while it was off: stays denied
    kinds = [(e.kind, e.reason) for e in container.denylist.list() if e.value == cid]
    assert kinds == [("client", "client enabled")]  # the blanket entry is gone, an ordinary cut-off took its place
