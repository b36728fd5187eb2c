"""Jinja2 for the hosted pages: one environment, autoescaping on, templates at the repository root.

The templates directory is, in order: ``IDP_TEMPLATES_DIR``; ``templates/`` next
to the package (a checkout or an editable install); ``./templates`` (the Docker
image's /app). Static files are ``templates/static`` served at ``/static``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse


def templates_dir() -> Path:
    for candidate in (
        os.environ.get("IDP_TEMPLATES_DIR"),
        Path(__file__).resolve().parents[2] / "templates",
        Path.cwd() / "templates",
    ):
        if candidate and (Path(candidate) / "base.html").is_file():
            return Path(candidate)
    raise RuntimeError("cannot find the templates folder; set IDP_TEMPLATES_DIR")


@functools.lru_cache(maxsize=1)
def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(templates_dir())),
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
