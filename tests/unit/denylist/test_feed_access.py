"""Who may read the deny-list feed, and when an open stream's client stops being allowed."""

from __future__ import annotations

import dataclasses

import pytest

from idp.clients.model import Client
from idp.denylist.feed import FEED_SCOPE, may_read, still_allowed


def reader(**changes: object) -> Client:
    client = Client("api", "Orders API", "service", "client_secret_basic", secret_digest=b"d1", scope=FEED_SCOPE)
    return dataclasses.replace(client, **changes)  # type: ignore[arg-type]


class Clients:
    def __init__(self, client: Client | None) -> None:
        self.client = client

    def get_active(self, client_id: str) -> Client | None:
        return self.client if self.client is not None and not self.client.disabled else None


def test_a_confidential_client_with_the_scope_may_read() -> None:
    assert may_read(reader())
    assert may_read(reader(scope=f"openid {FEED_SCOPE}"))


@pytest.mark.parametrize(
    "client",
    [None, reader(scope="openid"), reader(disabled=True), reader(kind="native", auth_method="none")],
    ids=["no client", "without the scope", "disabled", "public"],
)
def test_nobody_else_reads_the_feed(client: Client | None) -> None:
    assert not may_read(client)


def test_an_open_stream_ends_when_the_client_changes_under_it() -> None:
    seen = reader()
    assert still_allowed(Clients(seen), seen)
    assert not still_allowed(Clients(None), seen)  # deleted
    assert not still_allowed(Clients(reader(disabled=True)), seen)
    assert not still_allowed(Clients(reader(scope="openid")), seen)
    assert not still_allowed(Clients(reader(secret_digest=b"d2")), seen)  # secret rotated
    assert not still_allowed(Clients(reader(jwks={"keys": []})), seen)  # keys replaced
