"""How strongly a session was authenticated: RFC 8176 ``amr`` values and the ``acr`` values this IdP defines.

``amr`` lists the methods used, plus ``mfa`` when they span two of the three kinds of factor (something
you know, have, are or prove presence with): ``pwd`` + ``otp`` is ``mfa``; a passkey with user
verification (``hwk`` or ``swk`` + ``user``) is too.

The ``acr`` values (OIDC Core §2: "a string identifying the Authentication Context Class"):

* :data:`ACR_SFA` ``urn:idp:acr:sfa``: one factor (a password).
* :data:`ACR_MFA` ``urn:idp:acr:mfa``: two factors (``mfa`` in ``amr``).

:data:`SUPPORTED` is what discovery advertises (``acr_values_supported``): the values a sign-in here can
reach. A value is satisfied by the methods a session used (:func:`satisfies`); a request's ``acr_values``
are tried in the order given and the first one satisfied is the ``acr`` (:func:`acr_for`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

ACR_SFA = "urn:idp:acr:sfa"
ACR_MFA = "urn:idp:acr:mfa"
SUPPORTED: tuple[str, ...] = (ACR_SFA, ACR_MFA)
"""The ``acr`` values a sign-in can reach, weakest first (``acr_values_supported``)."""

_KINDS: dict[str, str] = {
    "pwd": "know", "pin": "know", "kba": "know",
    "otp": "have", "hwk": "have", "swk": "have", "sms": "have", "tel": "have", "sc": "have",
    "user": "are", "fpt": "are", "face": "are", "iris": "are", "retina": "are", "vbm": "are",
}  # fmt: skip
MAX_ACR_VALUES = 8


def amr_of(methods: Iterable[str]) -> tuple[str, ...]:
    """The ``amr`` for these methods (RFC 8176 §2), in first-use order, ``mfa`` last when they span two kinds."""
    used = tuple(dict.fromkeys(m for m in methods if m != "mfa"))
    kinds = {_KINDS[m] for m in used if m in _KINDS}
    return (*used, "mfa") if len(kinds) >= 2 else used  # RFC 8176 §2: "mfa", multiple-factor authentication


def satisfies(acr: str, amr: Iterable[str]) -> bool:
    """Whether a session with this ``amr`` meets the ``acr`` value; an unknown value is never met."""
    used = set(amr)
    if acr == ACR_SFA:
        return bool(used)
    if acr == ACR_MFA:
        return "mfa" in used
    return False


def parse_acr_values(value: str | None) -> tuple[str, ...]:
    """``acr_values`` (OIDC Core §3.1.2.1: space-separated, in order of preference), at most a few kept."""
    return tuple(dict.fromkeys((value or "").split()))[:MAX_ACR_VALUES]


def acr_for(amr: Iterable[str], requested: Sequence[str] = ()) -> str:
    """The ``acr`` to assert: the first requested value met, else the strongest of :data:`SUPPORTED` met."""
    amr = tuple(amr)
    for value in requested:
        if value in SUPPORTED and satisfies(value, amr):
            return value
    met = [value for value in SUPPORTED if satisfies(value, amr)]
    return met[-1] if met else ACR_SFA


def wanted(requested: Sequence[str]) -> tuple[str, ...]:
    """The requested values this IdP can reach (an unknown value cannot be asked for)."""
    return tuple(v for v in requested if v in SUPPORTED)


def preferred_met(requested: Sequence[str], amr: Iterable[str]) -> bool:
    """True when nothing we know was asked for, or the session meets the most preferred known value asked for
    (OIDC Core §3.1.2.1: ``acr_values`` in order of preference; a step-up aims for the first)."""
    known = wanted(requested)
    return not known or satisfies(known[0], amr)
