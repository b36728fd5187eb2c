"""What the TOTP enrolment and recovery-code pages show: the QR code (SVG, drawn here, no outside service),
the grouped secret, the codes."""

from __future__ import annotations

from typing import Any

import segno
from starlette.responses import Response

from idp.sessions.factors.service import TotpEnrolment
from idp.web.templating import render


def qr_svg(text: str) -> str:
    """An inline SVG QR code: dark modules on white, whatever the page's colour scheme (scanners need contrast)."""
    qr = segno.make(text, error="m")
    scale = max(3, 200 // (qr.symbol_size(scale=1, border=2)[0]))  # about 200 px wide, whole modules
    return str(qr.svg_inline(scale=scale, border=2, dark="#000000", light="#ffffff"))


def enrol_context(enrolment: TotpEnrolment, *, csrf: str, action: str, grace: bool, error: str = "") -> dict[str, Any]:
    secret = enrolment.secret
    return {
        "title": "Set up an authenticator app",
        "qr_svg": qr_svg(enrolment.uri),
        "secret_grouped": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        "factor_id": enrolment.factor_id,
        "csrf": csrf,
        "action": action,
        "grace": grace,
        "error": error,
    }


def recovery_page(codes: list[str], continue_url: str) -> Response:
    """The codes, this once (the page is ``no-store`` like every hosted page)."""
    return render("recovery.html", {"title": "Save your recovery codes", "codes": codes, "continue_url": continue_url})
