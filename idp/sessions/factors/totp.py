"""TOTP (RFC 6238) over pyotp, on the injected clock: 30-second steps, six digits, SHA-1, ±1 step.

SHA-1 and six digits are what every authenticator app implements (RFC 6238 §1.2 allows SHA-256/512, but
apps ignore the ``algorithm`` parameter); the secret has 160 bits (RFC 4226 §4 R6 recommends them).
"""

from __future__ import annotations

import hmac
from urllib.parse import quote

import pyotp

STEP = 30  # RFC 6238 §5.2: 30 seconds is the recommended time step
DIGITS = 6
WINDOW = 1  # RFC 6238 §5.2: at most one step back (and forward) for clock drift and typing time
SECRET_BYTES = 20  # 160 bits (RFC 4226 §4 R6)


def new_secret() -> str:
    """A base32 secret (no padding), as authenticator apps expect it."""
    return pyotp.random_base32(length=SECRET_BYTES * 8 // 5)


def step_at(now: float) -> int:
    return int(now // STEP)  # RFC 6238 §4.2: T = floor((Current Unix time - T0) / X), T0 = 0


def code_at(secret: str, step: int) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP).generate_otp(step)


def normalize(code: str) -> str:
    """What a person typed, without spaces or dashes; '' unless six digits."""
    code = "".join(code.split()).replace("-", "")
    return code if len(code) == DIGITS and code.isascii() and code.isdigit() else ""


def match(secret: str, code: str, now: float, *, after_step: int | None) -> int | None:
    """The time step ``code`` belongs to (now, one before or one after), or None.

    A step at or before ``after_step`` never matches: a code accepted once is not accepted again, nor
    any older one (RFC 6238 §5.2: "the verifier MUST NOT accept the second attempt of the OTP after the
    successful validation has been issued for the first OTP"). Every candidate is compared, in constant time.
    """
    code = normalize(code)
    if not code:
        return None
    current = step_at(now)
    found = None
    for step in range(current - WINDOW, current + WINDOW + 1):  # RFC 6238 §5.2: ±1 step
        ok = hmac.compare_digest(code_at(secret, step), code)
        if ok and (after_step is None or step > after_step) and found is None:  # RFC 6238 §5.2: no replay
            found = step
    return found


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """The ``otpauth://totp/`` URI the QR code carries (Google Authenticator's Key Uri Format)."""
    label = quote(f"{issuer}:{account}", safe="@:")
    query = f"secret={secret}&issuer={quote(issuer, safe='')}&algorithm=SHA1&digits={DIGITS}&period={STEP}"
    return f"otpauth://totp/{label}?{query}"
