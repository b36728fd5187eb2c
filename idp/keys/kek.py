"""The key-encryption key (KEK): from IDP_KEK, or a 0600 file created on first start."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from idp.crypto import b64url


class KekError(Exception):
    """Malformed KEK; the message names the setting."""


def parse_kek(text: str, source: str) -> bytes:
    """The operator's own key (never network input): base64url, padded or unpadded, of 32 bytes."""
    text = text.strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except Exception:
        raise KekError(f"{source}: not base64url") from None
    if len(raw) != 32:
        raise KekError(f"{source}: must decode to 32 bytes, got {len(raw)}")
    return raw


def load_or_create_kek(env_value: str, path: Path, *, create: bool = True) -> bytes:
    if env_value:
        return parse_kek(env_value, "IDP_KEK")
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise KekError(f"IDP_KEK_FILE: {path} is readable by others (mode {mode:o}); chmod 600 it")
        return parse_kek(path.read_text(), f"IDP_KEK_FILE ({path})")
    if not create:
        raise KekError(f"IDP_KEK_FILE: {path} does not exist")
    path.parent.mkdir(parents=True, exist_ok=True)
    kek = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(b64url(kek) + "\n")
    return kek
