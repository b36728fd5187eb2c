"""The protocol endpoints that answer in JSON: POST /token (:mod:`idp.oauth.token.endpoint`) and
/userinfo (:mod:`idp.oauth.userinfo`). The browser-facing /authorize is :mod:`idp.web.authorize`."""

from __future__ import annotations

from starlette.routing import Route

from idp.oauth.token.endpoint import TokenEndpoint
from idp.oauth.token.grant import GrantRegistry
from idp.oauth.userinfo import userinfo


def routes(grants: GrantRegistry) -> list[Route]:
    """/token first: Starlette matches routes in order, and it is the hottest endpoint."""
    return [
        Route("/token", TokenEndpoint(grants).handle, methods=["POST"]),
        Route("/userinfo", userinfo, methods=["GET", "POST"]),
    ]
