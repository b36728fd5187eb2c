"""Deny-list entries: their kinds, the change feed's steps, and their public (wire) shape.

Entry kinds and what they match (:class:`idp.denylist.denyset.DenySet` does the matching):

* ``jti``: the token with this ``jti`` (kept until that token's ``exp`` plus leeway);
* ``subject`` / ``session`` / ``client`` (the cut-off kinds): tokens whose ``sub`` / ``sid`` /
  ``client_id`` equals the value and whose ``iat`` is before ``not_before``;
* ``kid``: every token signed by that key (a compromised key).

The public shape is what resource servers receive (``GET /deny-list``, the SETs of
``/deny-list/events``): no reason or actor. :meth:`DenyEntry.from_public` and
:meth:`DenyChange.from_public` refuse anything malformed, since a resource server parses them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeGuard

KINDS = ("jti", "subject", "session", "client", "kid")
CUTOFF_CLAIMS = {"subject": "sub", "session": "sid", "client": "client_id"}
MAX_VALUE = 200
CUTOFF_KINDS = ("subject", "session", "client")


@dataclass(frozen=True, slots=True)
class DenyEntry:
    id: int  # also the version at which the entry was added
    kind: str
    value: str
    expires_at: float  # after this no token can match: the entry may be dropped
    not_before: float | None = None  # subject/session/client: tokens with iat < this (exactly) are denied
    # Operator context: kept at the IdP (list, audit), never published to resource servers.
    reason: str = field(default="", compare=False)
    actor: str = field(default="", compare=False)
    created_at: float = field(default=0.0, compare=False)

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "value": self.value, "expires_at": self.expires_at}
        if self.not_before is not None:
            out["not_before"] = self.not_before
        return out

    def admin(self) -> dict[str, Any]:
        return self.public() | {"reason": self.reason, "actor": self.actor, "created_at": self.created_at}

    @classmethod
    def from_public(cls, data: Mapping[str, Any]) -> DenyEntry:
        """Parse an entry received from the IdP; raises ValueError on anything malformed."""
        try:
            entry_id, kind, value, expires_at = data["id"], data["kind"], data["value"], data["expires_at"]
        except (KeyError, TypeError):
            raise ValueError("deny entry lacks id, kind, value or expires_at") from None
        not_before = data.get("not_before")
        if (
            not isinstance(entry_id, int)
            or isinstance(entry_id, bool)
            or kind not in KINDS
            or not isinstance(value, str)
            or not 0 < len(value) <= MAX_VALUE
            or not is_time(expires_at)
            or (not_before is not None and not is_time(not_before))
            or (kind in CUTOFF_CLAIMS and not_before is None)
        ):
            raise ValueError("malformed deny entry")
        return cls(entry_id, kind, value, float(expires_at), None if not_before is None else float(not_before))


@dataclass(frozen=True)
class DenyChange:
    """One step of the change feed: an entry added, or (``removed``) an entry taken off early."""

    version: int
    entry: DenyEntry | None = None
    removed: int | None = None

    def public(self) -> dict[str, Any]:
        if self.entry is not None:
            return {"version": self.version, "op": "add", "entry": self.entry.public()}
        return {"version": self.version, "op": "remove", "id": self.removed}

    @classmethod
    def from_public(cls, data: Mapping[str, Any]) -> DenyChange:
        if not isinstance(data, Mapping):
            raise ValueError("malformed deny change")
        version, op = data.get("version"), data.get("op")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError("malformed deny change version")
        if op == "add":
            return cls(version, entry=DenyEntry.from_public(data.get("entry")))  # type: ignore[arg-type]
        removed = data.get("id")
        if op == "remove" and isinstance(removed, int) and not isinstance(removed, bool):
            return cls(version, removed=removed)
        raise ValueError("malformed deny change")


def is_time(v: object) -> TypeGuard[float]:
    """A finite number of seconds (an int or float, not a bool)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


class NewEntry(NamedTuple):
    """An entry about to be written: the store gives it its version (id)."""

    kind: str
    value: str
    not_before: float | None
    expires_at: float


def check_new_entry(kind: str, value: str, until: float | None) -> None:
    """Refuse an entry no writer may add: ValueError, with a message the CLI and the admin API show as is."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    if not isinstance(value, str) or not 0 < len(value) <= MAX_VALUE:
        raise ValueError(f"value must be 1..{MAX_VALUE} characters")
    if until is not None and not math.isfinite(until):
        raise ValueError("until must be a finite time")


def clip_reason(reason: str | None) -> str:
    return (reason or "")[:300]


def clip_actor(actor: str | None) -> str:
    return (actor or "system")[:200]
