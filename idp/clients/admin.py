"""What an operator does to a client, the same from the CLI and the admin API.

Each call returns only once every worker has the new registration (``ClientRegistry.changed``)
and, when the client can no longer get tokens, once its deny-list entry is written: live
tokens stop at introspection, userinfo, the admin API and every ``idp.resource`` follower.

The order keeps a failure on the safe side. The cut-off is written BEFORE a disable or delete
is stored: when the deny-list write fails, the call fails and the client is unchanged (resource
servers see only the deny-list, so a stored change without its entry would leave them accepting
the tokens). On enable the entry is lifted AFTER the change is stored: when lifting fails, the
client stays refused rather than open.

* Disabling or deleting writes a client cut-off covering every token issued until the entry
  expires (:meth:`idp.denylist.service.DenyList.deny_every_token`): even a token some worker
  issued from a stale copy, or a resource server checks before the change reached it.
* Enabling again ends that entry behind an ordinary cut-off: tokens issued from then on work,
  those issued before stay denied.
"""

from __future__ import annotations

from typing import Any, Protocol

from idp.clients.model import Client
from idp.clients.registry import ClientRegistry
from idp.events import ClientChanged, Events


class Audit(Protocol):
    def record(self, action: str, *, actor: str = "system", client_id: str | None = None, **detail: Any) -> None: ...


class ClientCutoffs(Protocol):
    """The deny-list entries a client change writes (idp.denylist)."""

    def deny_every_token(self, kind: str, value: str, *, reason: str, actor: str) -> object: ...

    def lift(self, kind: str, value: str, *, reason: str, actor: str) -> object: ...


class ClientGone(LookupError):
    """No client by that id."""


class ClientAdmin:
    def __init__(
        self, registry: ClientRegistry, denylist: ClientCutoffs, audit: Audit, events: Events | None = None
    ) -> None:
        self._clients = registry
        self._denylist = denylist
        self._audit = audit
        self._events = events or Events()

    def create(self, *, actor: str, **fields: Any) -> tuple[Client, str | None]:
        """Register a client (``ClientRegistry.create``'s fields); the secret, if any, is returned once."""
        client, secret = self._clients.create(**fields)
        self._audit.record("client.created", actor=actor, client_id=client.client_id)
        return client, secret

    def update(self, client_id: str, changes: dict[str, Any], *, actor: str) -> Client:
        """Change registration fields; ``disabled`` in ``changes`` disables or enables."""
        before = self._get(client_id)
        disabling = bool(changes.get("disabled")) and not before.disabled
        enabling = "disabled" in changes and not changes["disabled"] and before.disabled
        if disabling:
            self._clients.check_update(client_id, **changes)  # refuse a bad change before denying anything
            self._block(client_id, actor, "client disabled")
        client = self._clients.update(client_id, **changes)
        self._audit.record("client.updated", actor=actor, client_id=client_id, fields=sorted(changes))
        if enabling:
            self._denylist.lift("client", client_id, reason="client enabled", actor=actor)
        self._events.publish(ClientChanged(client_id, "updated", actor))
        return client

    def set_disabled(self, client_id: str, disabled: bool, *, actor: str) -> Client:
        return self.update(client_id, {"disabled": disabled}, actor=actor)

    def delete(self, client_id: str, *, actor: str) -> None:
        """Deny the client's tokens, then delete the registration (its refresh-token families go with it:
        ON DELETE CASCADE)."""
        self._get(client_id)
        self._block(client_id, actor, "client deleted")
        if not self._clients.delete(client_id):
            raise ClientGone(f"no client {client_id!r}")
        self._audit.record("client.deleted", actor=actor, client_id=client_id)
        self._events.publish(ClientChanged(client_id, "deleted", actor))

    def rotate_secret(self, client_id: str, *, actor: str) -> str:
        """A new secret (returned once); the old one stops working on every worker when this returns."""
        secret = self._clients.rotate_secret(client_id)
        self._audit.record("client.secret_rotated", actor=actor, client_id=client_id)
        self._events.publish(ClientChanged(client_id, "secret_rotated", actor))
        return secret

    def _get(self, client_id: str) -> Client:
        client = self._clients.get(client_id)
        if client is None:
            raise ClientGone(f"no client {client_id!r}")
        return client

    def _block(self, client_id: str, actor: str, reason: str) -> None:
        self._denylist.deny_every_token("client", client_id, reason=reason, actor=actor)
