"""JSON answers of the protocol endpoints, and OAuth errors in the shape their RFC asks for."""

from __future__ import annotations

import logging

import orjson
from starlette.responses import Response

from idp.errors import InvalidClient, InvalidToken, OAuthError

log = logging.getLogger("idp.errors")
NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


def json_response(data: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers=headers, media_type="application/json")


def oauth_error_response(exc: OAuthError, *, basic_auth_used: bool = False, realm: str = "idp") -> Response:
    """RFC 6749 §5.2 / RFC 6750 §3 error body with no-store and the right WWW-Authenticate."""
    headers = dict(NO_STORE)
    if isinstance(exc, InvalidClient) and basic_auth_used:
        headers["www-authenticate"] = f'Basic realm="{realm}"'
    if isinstance(exc, InvalidToken) or exc.error == "insufficient_scope":
        desc = exc.description.replace('"', "'")
        headers["www-authenticate"] = f'Bearer realm="{realm}", error="{exc.error}", error_description="{desc}"'
    nonce = getattr(exc, "dpop_nonce", None)
    if nonce is not None:  # RFC 9449 §8: the nonce to use, with use_dpop_nonce
        headers["dpop-nonce"] = nonce
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:  # 429 and 503 may say when to come back (RFC 9110 §10.2.3)
        headers["retry-after"] = str(retry_after)
    if exc.detail:
        log.info("%s: %s", exc.error, exc.detail)
    return json_response(exc.body(), exc.status, headers)
