"""The address a request came from, for audit rows, throttling and per-address caps."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.requests import Request


def client_ip(request: Request) -> str:
    """The peer's address as the ASGI server reports it (behind trusted proxies, after uvicorn's
    ``X-Forwarded-For`` rewrite); empty when the transport has none."""
    return request.client.host if request.client else ""
