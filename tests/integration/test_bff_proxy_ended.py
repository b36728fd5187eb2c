"""A proxied call whose session cannot go on (idp refuses the refresh token) answers 401 ``session_ended``, and
that answer also ends the session for the browser: the cookie is cleared with the attributes it was set with,
and the server-side session is gone. Every BFF store beside each backend."""

from __future__ import annotations

import dataclasses
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from idp.bff.cookies import clear_session_cookie
from idp.services import Services
from tests.integration import bff_support
from tests.integration.bff_support import bff_rig, sign_in
from tests.oauthkit import make_user

store_url = bff_support.store_url

API = "https://orders.test"


async def test_session_ended_clears_the_cookie_and_the_session(app: Any, container: Services, store_url: str) -> None:
    reached: list[str] = []

    async def order(request: Request) -> JSONResponse:
        reached.append(request.url.path)
        return JSONResponse({"ok": True})

    upstream = Starlette(routes=[Route("/{rest:path}", order)])
    async with bff_rig(
        app, container, store_url=store_url, upstream_apps={API: upstream}, upstreams=f"/api={API}/v1"
    ) as rig:
        r = await sign_in(rig, make_user(container))
        assert r.status_code in (302, 303), r.text
        key = rig.bff.crypto.store_key(rig.browser.cookies.get(rig.settings.cookie_name))
        session = await rig.bff.store.get(key)
        assert session is not None
        # The access token has lapsed and the refresh token is one idp never issued: invalid_grant.
        lapsed = dataclasses.replace(
            session.tokens, access_expires_at=container.clock.now() - 1, refresh_token="not-a-refresh-token"
        )
        assert await rig.bff.store.replace(
            dataclasses.replace(session, tokens=lapsed, version=session.version + 1), expected_version=session.version
        )

        r = await rig.browser.get("/api/orders", headers={"X-CSRF": "1"})
        assert r.status_code == 401 and r.json()["error"] == "session_ended"
        expected = Response()
        clear_session_cookie(expected, rig.settings)
        assert r.headers.get_list("set-cookie") == expected.headers.getlist("set-cookie")
        cleared = r.headers["set-cookie"].lower()
        assert cleared.startswith(f"{rig.settings.cookie_name.lower()}=") and "max-age=0" in cleared
        assert "path=/" in cleared and "httponly" in cleared and "secure" in cleared
        assert await rig.bff.store.get(key) is None
        assert rig.settings.cookie_name not in rig.browser.cookies  # the browser dropped it
        assert reached == []
        r = await rig.browser.get("/api/orders", headers={"X-CSRF": "1"})
        assert r.status_code == 401 and r.json()["error"] == "session_required"
