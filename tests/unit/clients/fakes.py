"""An in-memory client store for the registry's unit tests, counting what the registry asks of it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from idp.clients.model import Client
from idp.clients.registry import ClientRegistry
from idp.clock import FrozenClock
from idp.crypto import Digester


class MemoryClients:
    def __init__(self) -> None:
        self.rows: dict[str, Client] = {}
        self.reads = 0
        self.lists = 0
        self.during_read: list[Callable[[], object]] = []  # run inside the next read (a change racing it)

    def get(self, client_id: str) -> Client | None:
        self.reads += 1
        found = self.rows.get(client_id)
        while self.during_read:
            self.during_read.pop()()
        return found

    def list(self) -> list[Client]:
        self.lists += 1
        return list(self.rows.values())

    def save(self, client: Client) -> None:
        self.rows[client.client_id] = client

    def delete(self, client_id: str) -> bool:
        return self.rows.pop(client_id, None) is not None


def registry_over(
    store: MemoryClients, clock: FrozenClock | None = None, *, issuer: str = "https://idp.test", **kw: Any
) -> ClientRegistry:
    return ClientRegistry(
        store, Digester(b"k" * 32), clock or FrozenClock(1000.0), issuer=issuer, api_audience=f"{issuer}/api", **kw
    )
