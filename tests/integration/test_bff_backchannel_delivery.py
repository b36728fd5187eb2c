"""idp's own back-channel logout sender delivers to the BFF's /bff/backchannel: a person signs in through the
BFF, signs out everywhere at idp, and the BFF's session is gone. idp's sender is the real one (outbox, lease,
logout token), its HTTP sent over ASGI to the BFF (the receiver's name is not resolved)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from idp.services import Services
from tests.integration import bff_support
from tests.integration.bff_support import LateTransport, bff_rig, sign_in
from tests.oauthkit import make_user

pytestmark = pytest.mark.timing  # the sender runs as a task: waited for in (bounded) real time


to_bff = bff_support.to_bff
app = bff_support.app_delivering_to_bff


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
