"""The deployment's second-factor policy: ``off``, ``optional``, ``required`` or ``flagged``.

* ``off``: nobody is asked for a second factor and the account page offers none.
* ``optional``: whoever enrolled a factor is asked for it at every sign-in.
* ``required``: everyone; a person without a factor enrols one at the next sign-in, before it completes.
* ``flagged``: as ``required`` for users carrying the flag (``mfa_flag``, e.g. ``admin``), else ``optional``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MODES = ("off", "optional", "required", "flagged")


@dataclass(frozen=True)
class FactorPolicy:
    mode: str = "optional"
    flag: str = "admin"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"second-factor policy must be one of {', '.join(MODES)}")

    @property
    def offered(self) -> bool:
        return self.mode != "off"

    def required_for(self, flags: Iterable[str]) -> bool:
        if self.mode == "required":
            return True
        return self.mode == "flagged" and self.flag in set(flags)
