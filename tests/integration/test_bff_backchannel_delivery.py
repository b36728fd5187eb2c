"""idp's own back-channel logout sender delivers to the BFF's /bff/backchannel: a person signs in through the
BFF, signs out everywhere at idp, and the BFF's session is gone. idp's sender is the real one (outbox, lease,
logout token), its HTTP sent over ASGI to the BFF (the receiver's name is not resolved)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

import idp.logout.feature as logout_feature
from idp.app import create_app
from idp.logout.target import Target
from idp.services import Services
from tests.integration.bff_support import bff_rig, sign_in
from tests.oauthkit import make_user

pytestmark = pytest.mark.timing  # the sender runs as a task: waited for in (bounded) real time


class LateTransport(httpx.AsyncBaseTransport):
    """Sends to an app chosen after idp has started (the BFF, which needs idp's transport first)."""

    def __init__(self) -> None:
        self.app: Any = None
        self.posts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert self.app is not None and request.url.path == "/bff/backchannel"
        self.posts += 1
        return await httpx.ASGITransport(app=self.app).handle_async_request(request)


@pytest.fixture
def to_bff() -> LateTransport:
    return LateTransport()


@pytest.fixture
async def app(container: Services, to_bff: LateTransport, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    real = logout_feature.make_sender

    def make_sender(services: Services, **kw: Any) -> Any:
        def resolver(uri: str) -> Target:
            return Target(url=uri, host="app.test", sni=None)

        return real(services, transport=to_bff, resolver=resolver, **kw)

    monkeypatch.setattr(logout_feature, "make_sender", make_sender)
    application = create_app(services=container)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30) as manager:
        yield manager.app


async def test_sign_out_everywhere_reaches_the_bff(app: Any, container: Services, to_bff: LateTransport) -> None:
    alice = make_user(container)
    async with bff_rig(app, container) as rig:
        to_bff.app = rig.bff_app
        await sign_in(rig, alice)
        key = rig.bff.crypto.store_key(rig.browser.cookies.get("__Host-bff"))
        assert (await rig.browser.get("/bff/user")).status_code == 200

        container.account.sign_out_everywhere(alice.id)
        deadline = time.monotonic() + 10
        while await rig.bff.store.get(key) is not None:
            assert time.monotonic() < deadline, "the logout token did not arrive"
            await asyncio.sleep(0.02)
        assert to_bff.posts >= 1
        assert (await rig.browser.get("/bff/user")).status_code == 401

        def delivered() -> bool:  # the BFF answered 200: idp records the delivery (right after the answer)
            rows = container.logout_outbox.list(state="delivered")
            return any(d.client_id == rig.client.client_id for d in rows)

        while not delivered():
            assert time.monotonic() < deadline, "idp did not record the delivery"
            await asyncio.sleep(0.02)
