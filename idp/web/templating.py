"""Jinja2 for the hosted pages: one environment, autoescaping on.

Templates are package data (``idp/templates``), loaded through the package, so an installed
wheel finds them wherever it lives; static files are ``idp/templates/static``, served at ``/static``.
"""

from __future__ import annotations

import functools
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

TEMPLATES = ("idp", "templates")
STATIC = ("idp", "templates/static")


@functools.lru_cache(maxsize=1)
def environment() -> Environment:
    return Environment(
        loader=PackageLoader(*TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(
    name: str, context: dict[str, Any] | None = None, status: int = 200, headers: dict[str, str] | None = None
) -> HTMLResponse:
    """Render a page. The SecurityHeaders middleware adds CSP, frame, referrer and no-store headers."""
    body = environment().get_template(name).render(**(context or {}))
    return HTMLResponse(body, status_code=status, headers=headers)


ERROR_TITLES = {
    400: "Something is wrong with this request",
    403: "Not allowed",
    404: "Page not found",
    429: "Too many attempts",
    500: "Something went wrong on our side",
    503: "Temporarily unavailable",
}


def error_page(
    error: str, error_description: str = "", status: int = 400, headers: dict[str, str] | None = None
) -> HTMLResponse:
    """The friendly error page (also used by the authorization endpoint for an unknown client or redirect URI).

    Shows the error code for support, never a stack trace and never a redirect.
    """
    context = {
        "error": error,
        "error_description": error_description,
        "status": status,
        "title": ERROR_TITLES.get(status, "Something went wrong"),
    }
    return render("error.html", context, status, headers)
