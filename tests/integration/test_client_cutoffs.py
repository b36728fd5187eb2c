"""Client and subject cut-offs as the IdP writes them: whole seconds, and "every token" for a client that is off."""

from __future__ import annotations

import httpx

from idp.clock import FrozenClock
from idp.container import Container
from tests.adminkit import AdminApi, admin_client, mint
from tests.oauthkit import make_user, service_client, tokens_for, web_client


async def test_signing_in_again_in_the_second_of_sign_out_everywhere_gives_a_working_token(
    client: httpx.AsyncClient, container: Container, clock: FrozenClock
) -> None:
    app, secret = web_client(container)
    user = make_user(container)
    old = (await tokens_for(container, client, app, secret, user))["access_token"]
    clock.advance(1.7)  # a fraction into a second
    container.denylist.deny("subject", user.id, reason="sign out everywhere", actor="test")
    [entry] = [e for e in container.denylist.list() if e.kind == "subject"]
    assert entry.not_before == int(clock.now())  # written in the resolution of iat
    clock.advance(0.2)  # the same second, after the cut-off
    new = (await tokens_for(container, client, app, secret, user))["access_token"]
    assert (await client.get("/userinfo", headers={"authorization": f"Bearer {new}"})).status_code == 200
    assert (await client.get("/userinfo", headers={"authorization": f"Bearer {old}"})).status_code == 401


async def test_a_disabled_clients_entry_covers_tokens_issued_after_it_until_enabled_again(
    client: httpx.AsyncClient, container: Container, clock: FrozenClock
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
