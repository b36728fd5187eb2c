"""The app's exception handlers: OAuth errors in their RFC shape, anything unexpected as ``server_error``."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from idp.errors import OAuthError
from idp.oauth.responses import NO_STORE, json_response, oauth_error_response

log = logging.getLogger("idp.errors")


async def oauth_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OAuthError)
    return oauth_error_response(exc, basic_auth_used=request.headers.get("authorization", "")[:6].lower() == "basic ")


async def server_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return json_response(
        {"error": "server_error", "error_description": "The server could not complete the request."},
        500,
        NO_STORE,
    )
