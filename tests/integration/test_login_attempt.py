"""One sign-in attempt: one worker thread for the throttle check, the verification and the outcome; audited."""

from __future__ import annotations

import pytest
import starlette.concurrency

from idp.web.pages import login as login_module
from tests.pagekit import PASSWORD, SAME_ORIGIN, field, login_form, make_user, sign_in


@pytest.fixture
def alice(container):
    return make_user(container)


async def test_each_attempt_is_audited_and_makes_one_thread_hop(client, container, alice, monkeypatch):
    hops = []
    original = starlette.concurrency.run_in_threadpool

    async def counted(func, *args, **kwargs):
        hops.append(getattr(func, "__name__", repr(func)))
        return await original(func, *args, **kwargs)

    monkeypatch.setattr(login_module, "run_in_threadpool", counted)
    assert (await sign_in(client, "alice", "wrong password")).status_code == 400
    failed = container.audit.query(action="login.failed")
    assert len(failed) == 1 and failed[0].ip
    page = await login_form(client)
    hops.clear()
    data = {"csrf": field(page.text, "csrf"), "username": "alice", "password": PASSWORD}
    assert (await client.post("/login", data=data, headers=SAME_ORIGIN)).status_code == 303
    assert hops == ["attempt"]  # was four: interaction lookup, throttle check, verification, sign-in
    ok = container.audit.query(action="login", subject=alice.id)
    assert len(ok) == 1 and ok[0].actor == alice.id and ok[0].detail["sid"]
