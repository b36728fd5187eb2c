"""A protocol feature as one typed unit: what it adds to the app (:func:`idp.app.create_app`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import BaseRoute

from idp.config import Settings
from idp.oauth.token.grant import GrantRegistry, TokenGrant
from idp.services import Services

Task = Callable[[Services], AbstractAsyncContextManager[None]]
EventHandlers = Callable[[Services], Iterable[tuple[type, Callable[[Any], None]]]]


RouteFactory = Callable[[GrantRegistry], Sequence[BaseRoute]]


@dataclass(frozen=True)
class Feature:
    """Everything one feature contributes; each part is optional.

    * ``routes``: its routes, in the order the app serves them (the app keeps the features' order). Handlers
      reach the services through the lifespan state (:func:`idp.services.services_of`), so the routes are
      static. A factory (the token endpoint, which dispatches over every feature's grants) is called once
      per app with the app's :class:`GrantRegistry`.
    * ``grants``: the token-endpoint grants it adds (:class:`idp.oauth.token.grant.TokenGrant`).
    * ``metadata``: its fields of the discovery document (:func:`idp.oauth.discovery.assemble`).
    * ``tasks``: lifespan tasks, entered at startup in feature order and exited in reverse at shutdown.
    * ``handlers``: ``(event type, handler)`` pairs subscribed to ``services.events`` while the app runs.
    * ``cors``: client endpoints browsers may call from a registered origin: path -> methods.
    * ``public_cors``: public documents any origin may read: path -> methods.
    """

    name: str
    routes: Sequence[BaseRoute] | RouteFactory = ()
    grants: Sequence[TokenGrant] = ()
    metadata: Callable[[Settings], Mapping[str, object]] | None = None
    tasks: Sequence[Task] = ()
    handlers: EventHandlers | None = None
    cors: Mapping[str, str] = field(default_factory=dict)
    public_cors: Mapping[str, str] = field(default_factory=dict)

    def routes_for(self, grants: GrantRegistry) -> Sequence[BaseRoute]:
        return self.routes(grants) if callable(self.routes) else self.routes
