"""The one JSON error shape every BFF answer uses: ``{"error", "error_description"}``, never cached."""

from __future__ import annotations

from starlette.responses import JSONResponse

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


def json_error(status: int, code: str, description: str, **headers: str) -> JSONResponse:
    """``headers`` are added to ``Cache-Control: no-store`` (e.g. ``vary="cookie"``)."""
    return JSONResponse(
        {"error": code, "error_description": description}, status_code=status, headers={**NO_STORE, **headers}
    )
