"""Domain events and the synchronous dispatcher that delivers them.

A service publishes what happened; the reactions are subscribed at the composition root
(:func:`idp.services.build_services`) or by a feature. Handlers run in the publisher's thread,
in subscription order, before :meth:`Events.publish` returns; an exception in a handler
propagates to the publisher (a reaction that must not be lost is not swallowed), and the
handlers after it do not run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from idp.interaction import SessionInfo


@dataclass(frozen=True)
class UserDisabled:
    """An account was disabled: it keeps no session, no grant and no live token."""

    user_id: str
    actor: str


@dataclass(frozen=True)
class KeyCompromised:
    """A signing key was revoked as compromised: every token it signed must stop working."""

    kid: str
    actor: str


@dataclass(frozen=True)
class SessionsEnded:
    """Login sessions ended (logout, expiry, sign-out everywhere, another user signing in)."""

    sessions: tuple[SessionInfo, ...]
    actor: str
    reason: str


@dataclass(frozen=True)
class GrantRevoked:
    """A refresh-token family was revoked, its live access tokens deny-listed in the same commit."""

    grant_id: str
    client_id: str
    user_id: str | None
    actor: str
    reason: str


@dataclass(frozen=True)
class ClientChanged:
    """An operator changed a client; ``change`` is ``updated``, ``deleted`` or ``secret_rotated``."""

    client_id: str
    change: str
    actor: str


E = TypeVar("E")
Handler = Callable[[Any], None]


class Events:
    """subscribe(event type, handler) / publish(event). Delivery is by exact type."""

    def __init__(self) -> None:
        self._handlers: dict[type, list[Handler]] = {}

    def subscribe(self, event_type: type[E], handler: Callable[[E], None]) -> Callable[[], None]:
        """Add ``handler`` after those already subscribed; returns the call that removes it again."""
        handlers = self._handlers.setdefault(event_type, [])
        handlers.append(handler)
        return lambda: handlers.remove(handler)

    def publish(self, event: object) -> None:
        for handler in tuple(self._handlers.get(type(event), ())):
            handler(event)
