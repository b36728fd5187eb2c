"""POST /token (RFC 6749 §3.2) as named steps over a :class:`GrantRegistry`.

read the form once -> look the grant up -> authenticate the client -> may this client use the grant ->
the browser origin -> the sender constraint (DPoP) -> the grant -> the JSON response. Every step raises an
:class:`idp.errors.OAuthError`; the app's handler renders it (RFC 6749 §5.2).

The sync/async seam: a grant that does no I/O (client_credentials), for a client already in the hot
cache and authenticated with its secret and without a DPoP proof, runs on the event loop (a keyed hash
and a signature); every other request (codes and refresh families in SQL/Redis, the ``private_key_jwt``
and DPoP replay caches, a client not cached yet) runs in the threadpool, where blocking is fine.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

from idp.clients.model import Client
from idp.clients.origins import check_client_origin, own_origin
from idp.errors import InvalidRequest, UnauthorizedClient
from idp.oauth import client_auth, dpop
from idp.oauth.forms import Pairs, read_form, single, values
from idp.oauth.responses import NO_STORE, json_response
from idp.oauth.token.grant import GrantRegistry, TokenGrant
from idp.oauth.token.request import TokenRequest
from idp.observability import context
from idp.services import Services, services_of

HOT_SECONDS = 5.0  # same bound as the client registry's cache: a changed client takes effect within it
HOT_MAX = 10_000


class HotClients:
    """Clients recently authenticated with a secret, for the inline path (no I/O)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hot: dict[str, tuple[float, Client]] = {}

    def get(self, c: Services, client_id: str) -> Client | None:
        hit = self._hot.get(client_id)
        if hit is None or hit[0] <= c.clock.now():
            return None
        # The registry's cached record, not ours: an invalidation (secret rotated, client disabled) shows at once.
        current = c.clients.cached(client_id)
        return current if current is not None and current.updated_at == hit[1].updated_at else None

    def put(self, c: Services, client: Client) -> None:
        with self._lock:
            if len(self._hot) >= HOT_MAX:
                self._hot.clear()
            self._hot[client.client_id] = (c.clock.now() + HOT_SECONDS, client)


class TokenEndpoint:
    """The token endpoint for one app: its grants and its hot-client cache; :meth:`handle` is the route."""

    def __init__(self, grants: GrantRegistry) -> None:
        self.grants = grants
        self.hot = HotClients()

    async def handle(self, request: Request) -> Response:
        c = services_of(request)
        pairs = await read_form(request)  # RFC 6749 §3.2: form-urlencoded only
        form = single(pairs)  # RFC 6749 §3.2: no repeated parameters
        grant = self.lookup(form)
        cred = client_auth.presented(request.headers, form)
        headers = {**NO_STORE, **dpop.success_headers(c, request.headers)}  # RFC 6749 §5.1: no-store
        if not grant.blocking and cred.method in client_auth.SECRET_METHODS and dpop.HEADER not in request.headers:
            cached = self.hot.get(c, cred.client_id)
            if cached is not None:
                body = self.run(c, grant, cred, form, pairs, request.headers, cached)
                return json_response(body, 200, headers)
        body = await run_in_threadpool(self.run, c, grant, cred, form, pairs, request.headers, None)
        return json_response(body, 200, headers)

    def lookup(self, form: Mapping[str, str]) -> TokenGrant:
        grant_type = form.get("grant_type")
        if not grant_type:
            raise InvalidRequest("missing grant_type")
        return self.grants.lookup(grant_type)  # RFC 9700 §2.4: no password grant; no implicit

    def run(
        self,
        c: Services,
        grant: TokenGrant,
        cred: client_auth.Presented,
        form: dict[str, str],
        pairs: Pairs,
        headers: Headers,
        cached: Client | None,
    ) -> dict[str, Any]:
        """The steps after the form: blocking unless ``cached`` is a hot client and the grant does no I/O."""
        client = self.authenticate(c, cred, cached)
        permitted(grant, client)
        # Before the grant runs: a page on another client's origin must not spend this client's code.
        check_client_origin(headers.getlist("origin"), client, own_origin(c.settings.issuer))
        params = {name: form[name] for name in grant.parameters if name in form}  # the allow-list
        request = TokenRequest(grant.grant_type, params, values(pairs, "resource"), client, headers)
        request = dpop.token_constraint(c, request, headers)  # RFC 9449 §5: the sender constraint
        context.annotate(client_id=client.client_id, client_type=client.kind, grant_type=grant.grant_type)
        return grant.issue(c, request)

    def authenticate(self, c: Services, cred: client_auth.Presented, cached: Client | None) -> Client:
        client = client_auth.authenticate(c, cred, endpoint="token", client=cached)
        if cached is None and cred.method in client_auth.SECRET_METHODS:
            self.hot.put(c, client)
        return client


def permitted(grant: TokenGrant, client: Client) -> None:
    """The client may use this grant: confidential only where the grant says so, and registered for it."""
    if client.is_public and not grant.public_clients:
        raise UnauthorizedClient(f"public clients cannot use {grant.grant_type}")  # e.g. RFC 6749 §4.4
    if not client.allows_grant(grant.grant_type):  # ASVS V10.4.4: per-client grant types
        raise UnauthorizedClient(f"the client is not registered for {grant.grant_type}")
