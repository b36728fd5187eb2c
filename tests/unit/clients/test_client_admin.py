"""ClientAdmin's order of writes: a failing deny-list write leaves the client as it was, never open."""

from __future__ import annotations

from typing import Any

import pytest

from idp.clients.admin import ClientAdmin, ClientGone
from idp.clients.model import ClientValidationError
from idp.events import ClientChanged, Events
from tests.unit.clients.fakes import MemoryClients, registry_over


class Deny:
    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[str, str, str]] = []

    def deny_every_token(self, kind: str, key: str, **_: Any) -> None:
        if self.fail:
            raise RuntimeError("deny-list unavailable")
        self.calls.append(("deny", kind, key))

    def lift(self, kind: str, key: str, **_: Any) -> None:
        if self.fail:
            raise RuntimeError("deny-list unavailable")
        self.calls.append(("lift", kind, key))


class Audit:
    def __init__(self) -> None:
        self.actions: list[str] = []

    def record(self, action: str, **_: Any) -> None:
        self.actions.append(action)


def setup(deny: Deny) -> tuple[ClientAdmin, MemoryClients, str, Audit]:
    store = MemoryClients()
    reg = registry_over(store)
    client, _ = reg.create(name="svc", kind="service", scope="read")
    audit = Audit()
    return ClientAdmin(reg, deny, audit), store, client.client_id, audit


def test_disabling_writes_the_cut_off_and_a_failing_write_leaves_the_client_enabled() -> None:
    deny = Deny(fail=True)
    admin, store, cid, audit = setup(deny)
    with pytest.raises(RuntimeError):
        admin.set_disabled(cid, True, actor="t")
    assert store.rows[cid].disabled is False and audit.actions == []  # nothing stored without its cut-off
    deny.fail = False
    admin.set_disabled(cid, True, actor="t")
    assert store.rows[cid].disabled is True and deny.calls == [("deny", "client", cid)]


def test_deleting_with_a_failing_deny_write_keeps_the_client() -> None:
    deny = Deny(fail=True)
    admin, store, cid, _ = setup(deny)
    with pytest.raises(RuntimeError):
        admin.delete(cid, actor="t")
    assert cid in store.rows
    deny.fail = False
    admin.delete(cid, actor="t")
    assert cid not in store.rows and deny.calls == [("deny", "client", cid)]
    with pytest.raises(ClientGone):
        admin.delete(cid, actor="t")
    assert deny.calls == [("deny", "client", cid)]  # no cut-off for a client that was not there


def test_a_failing_lift_leaves_the_client_enabled_in_the_store_but_its_tokens_refused() -> None:
    deny = Deny()
    admin, store, cid, _ = setup(deny)
    admin.set_disabled(cid, True, actor="t")
    deny.fail = True
    with pytest.raises(RuntimeError):
        admin.set_disabled(cid, False, actor="t")
    assert store.rows[cid].disabled is False  # stored first: the entry still refuses, never the other way round
    assert deny.calls == [("deny", "client", cid)]


def test_an_invalid_disable_writes_no_cut_off() -> None:
    deny = Deny()
    admin, store, cid, _ = setup(deny)
    with pytest.raises(ClientValidationError):
        admin.update(cid, {"disabled": True, "name": " "}, actor="t")
    assert deny.calls == [] and store.rows[cid].disabled is False


def test_every_change_is_published_with_its_client_and_actor() -> None:
    store = MemoryClients()
    reg = registry_over(store)
    client, _ = reg.create(name="svc", kind="service", scope="read")
    events, seen = Events(), []
    events.subscribe(ClientChanged, seen.append)
    admin = ClientAdmin(reg, Deny(), Audit(), events)
    cid = client.client_id
    admin.set_disabled(cid, True, actor="ops")
    admin.rotate_secret(cid, actor="ops")
    admin.delete(cid, actor="cli")
    assert seen == [
        ClientChanged(cid, "updated", "ops"),
        ClientChanged(cid, "secret_rotated", "ops"),
        ClientChanged(cid, "deleted", "cli"),
    ]


def test_a_refused_change_publishes_nothing() -> None:
    events, seen = Events(), []
    events.subscribe(ClientChanged, seen.append)
    store = MemoryClients()
    reg = registry_over(store)
    client, _ = reg.create(name="svc", kind="service", scope="read")
    admin = ClientAdmin(reg, Deny(fail=True), Audit(), events)
    with pytest.raises(RuntimeError):
        admin.set_disabled(client.client_id, True, actor="t")
    assert seen == []


def test_create_and_rotate_write_their_events() -> None:
    admin, _, _, audit = setup(Deny())
    client, secret = admin.create(actor="cli", name="web", kind="web", redirect_uris=["https://a.example/cb"])
    assert secret and client.name == "web"
    admin.rotate_secret(client.client_id, actor="cli")
    assert audit.actions == ["client.created", "client.secret_rotated"]
