"""Recovery codes: ten one-time codes of 80 random bits each, shown once and stored as keyed digests.

A code is ``xxxx-xxxx-xxxx-xxxx`` in an alphabet without look-alike characters; what the person types is
normalised (case, spaces, dashes) before it is digested. The digest is keyed with the KEK and covers the
user id, so the same code string means nothing for another account.
"""

from __future__ import annotations

import secrets

COUNT = 10
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # 31 characters: no 0/o, 1/l/i
LENGTH = 16  # 16 * log2(31) ≈ 79 bits
GROUP = 4


def new_codes(count: int = COUNT) -> list[str]:
    codes = []
    for _ in range(count):
        raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
        codes.append("-".join(raw[i : i + GROUP] for i in range(0, LENGTH, GROUP)))
    return codes


def normalize(code: str) -> str:
    """The code's characters, lower case; '' when it cannot be a recovery code."""
    raw = "".join(code.split()).replace("-", "").lower()
    return raw if len(raw) == LENGTH and all(ch in ALPHABET for ch in raw) else ""


def digest_input(user_id: str, code: str) -> str:
    """What the keyed digest is taken of: the user and the normalised code."""
    return f"recovery:{user_id}:{normalize(code)}"
