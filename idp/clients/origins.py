"""Which browser origins may call an endpoint for one client (the Fetch standard's ``Origin``).

The CORS layer (:mod:`idp.web.cors`) admits the origins of every client together; an endpoint
then checks the origin against the one client the request is for, once it knows that client:
an origin registered by client A does not let a page call for client B.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from idp.clients.model import Client, origin_of
from idp.errors import InvalidRequest

DESCRIPTION = "Cross-origin requests from this origin are not allowed."


class OriginRefused(InvalidRequest):
    """403 invalid_request, no Bearer challenge: the same answer the CORS layer gives."""

    status = 403


@functools.lru_cache(maxsize=16)
def own_origin(issuer: str) -> str:
    """The issuer's origin: its own pages may always call its endpoints."""
    return origin_of(issuer) or issuer


def check_client_origin(origins: Sequence[str], client: Client, own: str) -> None:
    """Raise :class:`OriginRefused` unless every ``Origin`` sent is ours or one of ``client``'s own origins.

    Call it before the endpoint spends anything (a code, a refresh token). No ``Origin``: not a browser's
    cross-origin call, nothing to check.
    """
    for origin in origins:
        if origin != own and origin not in client.cors_origins:
            raise OriginRefused(DESCRIPTION, detail=f"origin {origin[:100]!r} is not one of {client.client_id}'s")
