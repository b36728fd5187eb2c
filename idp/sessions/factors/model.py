"""A person's factors and recovery codes, and the storage Protocols the factor service needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

TOTP = "totp"  # passkeys are kept apart (idp.sessions.passkeys, table webauthn_credentials)


@dataclass(frozen=True)
class Factor:
    id: str
    user_id: str
    kind: str  # TOTP
    name: str
    created_at: float
    secret_enc: bytes | None = None  # sealed (AES-GCM, idp.crypto.Sealer) with the factor id as associated data
    data: dict[str, Any] = field(default_factory=dict, hash=False)  # the kind's public data
    confirmed_at: float | None = None  # None: enrolled but not yet confirmed with a code; never asked for
    last_used_at: float | None = None
    last_step: int | None = None  # TOTP: the newest time step accepted; no code of it or before it passes again

    @property
    def confirmed(self) -> bool:
        return self.confirmed_at is not None


class FactorStore(Protocol):
    def add(self, factor: Factor) -> None: ...

    def get(self, factor_id: str) -> Factor | None: ...

    def list_for_user(self, user_id: str) -> list[Factor]:
        """Confirmed and unconfirmed, oldest first."""
        ...

    def accept_step(self, factor_id: str, step: int, at: float, *, confirm: bool = False) -> bool:
        """Record a TOTP time step as used, only if it is newer than the one recorded (one conditional write, so
        of concurrent uses of one code at most one succeeds: RFC 6238 §5.2); with ``confirm`` also mark the
        factor confirmed. False when a newer or equal step was accepted meanwhile."""
        ...

    def delete(self, user_id: str, factor_ids: list[str] | None = None) -> list[Factor]:
        """Delete these factors of the user (all of them with None); returns those deleted."""
        ...


class RecoveryCodeStore(Protocol):
    def replace(self, user_id: str, digests: list[bytes], at: float) -> None:
        """Drop every code of the user and store these, in one transaction."""
        ...

    def use(self, user_id: str, digest: bytes, at: float) -> bool:
        """Mark the code used if it is the user's and unused (one conditional write); True when this call did."""
        ...

    def remaining(self, user_id: str) -> int: ...

    def delete(self, user_id: str) -> int: ...
