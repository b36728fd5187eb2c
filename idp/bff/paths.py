"""Path segments that could climb out of a base path, however many times an upstream decodes them."""

from __future__ import annotations

from urllib.parse import unquote


def unsafe_segments(path: str) -> bool:
    """True when a ``/``-separated segment decodes (once or more) to ``.`` or ``..``, or contains an encoded
    ``/``, ``\\`` or NUL: forwarded, it could name something outside the prefix it was checked under."""
    for segment in path.split("/"):
        decoded = segment
        for _ in range(4):  # decode until stable: an upstream that decodes twice must not see ".." either
            once = unquote(decoded)
            if once == decoded:
                break
            decoded = once
        if decoded in (".", "..") or "/" in decoded or "\\" in decoded or "\x00" in decoded:
            return True
    return False
