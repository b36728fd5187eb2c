"""One person's whole day through the BFF, every piece real: hosted sign-in at the in-process idp, proxied
calls to an API that checks its tokens with idp.resource against idp's JWKS, the access token lapsing on
the injected clock, twenty parallel calls that idp sees as one refresh (counted in its own tables), and
"sign out everywhere" at idp, whose back-channel logout (idp's real sender) ends the BFF's session.
Both backends, every BFF store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from idp.bff.session import BffSession
from idp.resource import BearerAuthMiddleware, ResourceProtector, TokenInvalid, principal_of
from idp.services import Services
from idp.tokens.jwt import LEEWAY
from tests.integration import bff_support
from tests.integration.bff_support import LateTransport, bff_rig, rotations, sign_in
from tests.oauthkit import ISSUER, make_user

pytestmark = pytest.mark.timing  # the back-channel sender and the waiting refreshers run on real time

API = "https://orders.test"
BILLING = "https://billing.test"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
CSRF = {"X-CSRF": "1"}

store_url = bff_support.store_url
to_bff = bff_support.to_bff
app = bff_support.app_delivering_to_bff


@dataclass
class OrdersApi:
    """An API behind idp.resource's middleware; it records the bearer tokens that reached it (answering
    them back would hand them to the browser)."""

    protector: ResourceProtector
    app: Starlette
    tokens: list[str] = field(default_factory=list)


@pytest.fixture
async def apis(app: Any, container: Services) -> AsyncIterator[Callable[[str], OrdersApi]]:
    """Makes an API that accepts tokens for one audience, checked by idp.resource against idp's JWKS."""
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))

    def make(audience: str) -> OrdersApi:
        protector = ResourceProtector(issuer=ISSUER, audience=audience, http=http, follow=False, clock=container.clock)
        seen: list[str] = []

        async def order(request: Request) -> JSONResponse:
            principal = principal_of(request)
            assert principal is not None
            seen.append(request.headers["authorization"].removeprefix("Bearer "))
            claims = principal.claims
            return JSONResponse(
                {"sub": principal.sub, "aud": claims["aud"], "client_id": principal.client_id,
                 "act": claims.get("act"), "path": request.url.path}
            )  # fmt: skip

        api = Starlette(
            routes=[Route("/{rest:path}", order, methods=["GET", "POST"])],
            middleware=[Middleware(BearerAuthMiddleware, protector=protector)],
        )
        return OrdersApi(protector, api, seen)

    yield make
    await http.aclose()


@pytest.fixture
def orders(apis: Callable[[str], OrdersApi]) -> OrdersApi:
    return apis(API)


def no_tokens_in(r: httpx.Response, *tokens: str | None) -> None:
    seen = r.text + "\n".join(f"{k}: {v}" for k, v in r.headers.items())
    for token in tokens:
        if token:
            assert token not in seen and token[-40:] not in seen


async def stored(rig: Any) -> BffSession:
    session = await rig.bff.store.get(rig.bff.crypto.store_key(rig.browser.cookies.get("__Host-bff")))
    assert session is not None
    return session


async def test_sign_in_proxy_refresh_once_and_sign_out_everywhere(
    app: Any, container: Services, store_url: str, to_bff: LateTransport, orders: OrdersApi
) -> None:
    alice = make_user(container)
    clock = container.clock
    async with bff_rig(
        app, container, store_url=store_url, upstream_apps={API: orders.app},
        upstreams="/api=https://orders.test/v1", client_options={"audience": API},
    ) as rig:  # fmt: skip
        to_bff.app = rig.bff_app
        await sign_in(rig, alice)
        session = await stored(rig)

        # Forward mode: the upstream gets the session's own access token, aud as idp issued it.
        r = await rig.browser.get("/api/orders/1", headers=CSRF)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["sub"] == alice.id and body["client_id"] == rig.client.client_id
        issued = await orders.protector.verifier.verify(session.tokens.access_token)
        assert body["aud"] == issued[1]["aud"] and API in body["aud"]  # the token as idp issued it, unchanged
        assert body["act"] is None and body["path"] == "/v1/orders/1"
        assert orders.tokens == [session.tokens.access_token]
        no_tokens_in(r, session.tokens.access_token, session.tokens.refresh_token, session.tokens.id_token)
        assert rotations(container, rig.client.client_id) == (0, 0)

        # The access token lapses (the injected clock, past the verifier's leeway): the upstream would refuse it.
        clock.advance(session.tokens.access_expires_at - clock.now() + LEEWAY + 1)
        with pytest.raises(TokenInvalid):
            await orders.protector.verifier.verify(session.tokens.access_token)

        answers = await asyncio.gather(*(rig.browser.get(f"/api/orders/{i}", headers=CSRF) for i in range(20)))
        assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers if a.status_code != 200]
        assert rotations(container, rig.client.client_id) == (1, 0)  # one refresh, no reuse, at idp's side
        renewed = await stored(rig)
        assert renewed.tokens.refresh_token != session.tokens.refresh_token
        assert set(orders.tokens[1:]) == {renewed.tokens.access_token} and len(orders.tokens) == 21
        for a in answers:
            no_tokens_in(a, renewed.tokens.access_token, renewed.tokens.refresh_token, renewed.tokens.id_token)

        # Sign out everywhere at idp: its back-channel logout reaches /bff/backchannel and ends the session.
        container.account.sign_out_everywhere(alice.id)
        deadline = time.monotonic() + 10
        while await rig.bff.store.get(renewed.key) is not None:
            assert time.monotonic() < deadline, "the logout token did not arrive"
            await asyncio.sleep(0.02)
        assert to_bff.posts >= 1
        r = await rig.browser.get("/api/orders/1", headers=CSRF)
        assert r.status_code == 401 and r.json()["error"] == "session_required"
        assert len(orders.tokens) == 21  # nothing more reached the upstream


async def test_exchange_mode_gives_the_upstream_a_token_for_its_audience_naming_the_bff(
    app: Any, container: Services, store_url: str, apis: Callable[[str], OrdersApi]
) -> None:
    billing = apis(BILLING)
    alice = make_user(container)
    clock = container.clock
    client_options = {"grant_types": ["authorization_code", "refresh_token", TOKEN_EXCHANGE],
                      "token_exchange_audiences": [BILLING]}  # fmt: skip
    async with bff_rig(
        app, container, store_url=store_url, upstream_apps={BILLING: billing.app},
        upstreams=f"/billing={BILLING};exchange={BILLING}", client_options=client_options,
    ) as rig:  # fmt: skip
        await sign_in(rig, alice)
        session = await stored(rig)
        with pytest.raises(TokenInvalid):  # the session's own token is not for this API
            await billing.protector.verifier.verify(session.tokens.access_token)

        r = await rig.browser.get("/billing/invoices", headers=CSRF)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["aud"] == BILLING and body["sub"] == alice.id
        assert body["act"] == {"sub": rig.client.client_id, "client_id": rig.client.client_id}  # RFC 8693 §4.1
        [token] = billing.tokens
        assert token != session.tokens.access_token
        no_tokens_in(r, token, session.tokens.access_token, session.tokens.refresh_token, session.tokens.id_token)
        assert (await rig.browser.get("/billing/invoices/2", headers=CSRF)).status_code == 200
        assert billing.tokens == [token, token]  # cached for its lifetime: one exchange
        assert len(container.audit.query(action="token.exchanged")) == 1

        # The session's token lapses: one refresh, then a new exchange from the new subject token.
        clock.advance(session.tokens.access_expires_at - clock.now() + LEEWAY + 1)
        answers = await asyncio.gather(*(rig.browser.get(f"/billing/i/{i}", headers=CSRF) for i in range(10)))
        assert [a.status_code for a in answers] == [200] * 10
        assert rotations(container, rig.client.client_id) == (1, 0)
        assert len(container.audit.query(action="token.exchanged")) == 2
        assert len(set(billing.tokens[2:])) == 1 and billing.tokens[2] != token
