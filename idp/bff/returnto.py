"""Where the browser goes after sign-in: only a path on the BFF's own origin (RFC 9700 §4.11, no open redirector).

``//evil.example`` and ``/\\evil.example`` are network-path references to browsers (they read ``\\`` as ``/``),
an absolute URL names another origin, and control characters or spaces could split a header or be trimmed
into one of those: all are refused, and the caller falls back to ``/``.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

MAX_LENGTH = 512
_PRINTABLE = re.compile(r"[\x21-\x7e]+")  # visible ASCII: no controls, space, DEL, nothing non-ASCII
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def safe_return_to(value: str | None, default: str = "/") -> str:
    if not value or len(value) > MAX_LENGTH or not _PRINTABLE.fullmatch(value):
        return default
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    decoded = unquote(value)  # "/%2F%2Fevil" or "/%5Cevil" is harmless to us, but a later decoder may not be
    if decoded.startswith("//") or "\\" in decoded or _CONTROL.search(decoded):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    if parts.path == "/bff" or parts.path.startswith("/bff/"):  # never back into the sign-in machinery
        return default
    return value
