"""The sync/async seam between Starlette and Authlib's synchronous server core.

Shape (STYLE.md): I/O before and after, Authlib's decision logic in the middle.
The body is read and parsed on the event loop. A client-credentials request from
a client already in the hot cache, authenticated with its secret, needs no I/O
at all (a keyed hash and a signature), so it runs inline; every other request
(codes and refresh families in SQL/Redis, ``private_key_jwt`` replay cache, a
client not cached yet) runs in the threadpool, where blocking is fine.
"""

from __future__ import annotations

import threading
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from idp.clients.model import Client
from idp.errors import InvalidRequest, UnsupportedGrantType
from idp.oauth import client_auth
from idp.oauth.forms import read_form, single, values
from idp.oauth.server import GRANT_TYPES, IdpAuthorizationServer, TokenRequest
from idp.observability import context
from idp.services import Services
from idp.web.cors import check_client_origin, own_origin

HOT_SECONDS = 5.0  # same bound as the client registry's cache: a changed client takes effect within it
HOT_MAX = 10_000


class HotClients:
    """Clients recently authenticated with a secret, for the inline path (no I/O)."""

    def __init__(self, c: Services) -> None:
        self._c = c
        self._lock = threading.Lock()
        self._hot: dict[str, tuple[float, Client]] = {}

    def get(self, client_id: str) -> Client | None:
        hit = self._hot.get(client_id)
        if hit is None or hit[0] <= self._c.clock.now():
            return None
        # The registry's cached record, not ours: an invalidation (secret rotated, client disabled) shows at once.
        current = self._c.clients.cached(client_id)
        return current if current is not None and current.updated_at == hit[1].updated_at else None

    def put(self, client: Client) -> None:
        with self._lock:
            if len(self._hot) >= HOT_MAX:
                self._hot.clear()
            self._hot[client.client_id] = (self._c.clock.now() + HOT_SECONDS, client)


class TokenBridge:
    def __init__(self, c: Services) -> None:
        self.c = c
        self.server = IdpAuthorizationServer(c)
        self.hot = HotClients(c)
        self.uri = f"{c.settings.issuer}/token"
        self.own_origin = own_origin(c.settings.issuer)

    async def token_response(self, request: Request) -> dict[str, Any]:
        pairs = await read_form(request)  # RFC 6749 §3.2: form-urlencoded only
        form = single(pairs)  # RFC 6749 §3.2: no repeated parameters
        grant_type = form.get("grant_type")
        if not grant_type:
            raise InvalidRequest("missing grant_type")
        if grant_type not in GRANT_TYPES:  # RFC 9700 §2.4: no password grant; no implicit
            raise UnsupportedGrantType("unsupported grant_type")
        cred = client_auth.presented(request.headers, form)
        resources = values(pairs, "resource")
        if grant_type == "client_credentials" and cred.method in client_auth.SECRET_METHODS:
            cached = self.hot.get(cred.client_id)
            if cached is not None:
                client = client_auth.authenticate(self.c, cred, endpoint="token", client=cached)
                check_client_origin(request.headers.getlist("origin"), client, self.own_origin)
                _annotate(client, grant_type)
                return self.server.token(TokenRequest(self.uri, request.headers, form, resources, client))
        return await run_in_threadpool(self._blocking, cred, form, resources, request.headers)

    def _blocking(
        self, cred: client_auth.Presented, form: dict[str, str], resources: list[str], headers: Any
    ) -> dict[str, Any]:
        client = client_auth.authenticate(self.c, cred, endpoint="token")
        if cred.method in client_auth.SECRET_METHODS:
            self.hot.put(client)
        # Before the grant runs: a page on another client's origin must not spend this client's code.
        check_client_origin(headers.getlist("origin"), client, self.own_origin)
        _annotate(client, form["grant_type"])
        return self.server.token(TokenRequest(self.uri, headers, form, resources, client))


def _annotate(client: Client, grant_type: str) -> None:
    """For the access line and metrics: the authenticated client, so they need not decode what was claimed."""
    context.annotate(client_id=client.client_id, client_type=client.kind, grant_type=grant_type)
