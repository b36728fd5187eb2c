"""The factor service: enrol and confirm TOTP, verify a second factor, recovery codes, remove and reset.

Blocking (SQL, the shared store): the HTTP layer calls it from a worker thread. Every attempt to verify a
code is reserved with the ``otp``-scoped :class:`idp.users.throttle.LoginThrottle` before anything is
compared (NIST SP 800-63B §5.2.2), keyed by the user id, so guessing codes is limited like guessing passwords
and concurrent guesses cannot exceed the limit. Every change is audited.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from idp.clock import Clock
from idp.crypto import Digester, Sealer, random_id
from idp.sessions.factors import recovery, totp
from idp.sessions.factors.model import TOTP, Factor, FactorStore, RecoveryCodeStore
from idp.sessions.factors.policy import FactorPolicy
from idp.users.throttle import LoginThrottle

MAX_FACTORS = 10  # confirmed factors per person, every kind together
MAX_NAME = 64


class Audit(Protocol):
    def record(self, action: str, *, actor: str = ..., subject: str | None = ..., **detail: Any) -> None: ...


class FactorError(Exception):
    """Shown to the person as is; ``retry_after`` is set when throttled."""

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class TotpEnrolment:
    """An enrolment waiting for its first code: the secret is shown (QR code) only now."""

    factor_id: str
    secret: str
    uri: str


@dataclass(frozen=True)
class Verified:
    """A second factor passed: ``amr`` is the RFC 8176 method it adds to the session."""

    kind: str  # "totp" | "recovery"
    amr: str
    factor_id: str | None
    recovery_left: int | None = None


@dataclass(frozen=True)
class Rejected:
    """A wrong, reused or malformed code; ``retry_after`` when this failure locked further attempts."""

    retry_after: int | None = None


@dataclass(frozen=True)
class Throttled:
    retry_after: int


Outcome = Verified | Rejected | Throttled


def _aad(factor_id: str) -> bytes:
    return f"factor:{factor_id}".encode()


class Factors:
    def __init__(
        self,
        store: FactorStore,
        codes: RecoveryCodeStore,
        *,
        sealer: Sealer,
        digester: Digester,
        clock: Clock,
        throttle: LoginThrottle,
        audit: Audit,
        policy: FactorPolicy,
        issuer_name: str,
    ) -> None:
        self.store = store
        self._codes = codes
        self._sealer = sealer
        self._digester = digester
        self._clock = clock
        self._throttle = throttle
        self._audit = audit
        self.policy = policy
        self.issuer_name = issuer_name
        self.other_kinds: list[Callable[[str], bool]] = []  # user_id -> has a factor of that kind

    # -- reading -------------------------------------------------------------------------
    def confirmed(self, user_id: str, kind: str | None = None) -> list[Factor]:
        return [f for f in self.store.list_for_user(user_id) if f.confirmed and (kind is None or f.kind == kind)]

    def has_second_factor(self, user_id: str) -> bool:
        """A confirmed factor that sign-in will ask for (never while the policy is ``off``): one of ours, or one
        another service keeps (a passkey: :attr:`other_kinds`)."""
        return self.policy.offered and (bool(self.confirmed(user_id)) or any(has(user_id) for has in self.other_kinds))

    def required_for(self, flags: list[str]) -> bool:
        return self.policy.required_for(flags)

    def recovery_left(self, user_id: str) -> int:
        return self._codes.remaining(user_id)

    # -- TOTP enrolment ------------------------------------------------------------------
    def start_totp(self, user_id: str, account: str, *, name: str = "Authenticator app") -> TotpEnrolment:
        """A new, unconfirmed TOTP factor (replacing the user's earlier unconfirmed ones)."""
        if not self.policy.offered:
            raise FactorError("Second factors are turned off here.")
        factors = self.store.list_for_user(user_id)
        if sum(f.confirmed for f in factors) >= MAX_FACTORS:
            raise FactorError(f"You already have {MAX_FACTORS} sign-in methods. Remove one first.")
        stale = [f.id for f in factors if not f.confirmed and f.kind == TOTP]
        if stale:
            self.store.delete(user_id, stale)
        secret = totp.new_secret()
        factor_id = random_id(12)
        self.store.add(
            Factor(
                id=factor_id, user_id=user_id, kind=TOTP, name=_clean_name(name) or "Authenticator app",
                created_at=self._clock.now(), secret_enc=self._sealer.seal(secret.encode(), _aad(factor_id)),
            )
        )  # fmt: skip
        return TotpEnrolment(factor_id, secret, totp.provisioning_uri(secret, account=account, issuer=self.issuer_name))

    def pending_totp(self, user_id: str, factor_id: str, account: str) -> TotpEnrolment | None:
        """The unconfirmed enrolment again (the page re-shown after a wrong code)."""
        factor = self.store.get(factor_id)
        if factor is None or factor.user_id != user_id or factor.confirmed or factor.kind != TOTP:
            return None
        secret = self._secret(factor)
        return TotpEnrolment(factor.id, secret, totp.provisioning_uri(secret, account=account, issuer=self.issuer_name))

    def confirm_totp(self, user_id: str, factor_id: str, code: str, *, ip: str, actor: str | None = None) -> Factor:
        """The first code from the app proves it holds the secret; only then is the factor asked for."""
        factor = self.store.get(factor_id)
        if factor is None or factor.user_id != user_id or factor.kind != TOTP or factor.confirmed:
            raise FactorError("This set-up has expired. Start again.")
        attempt = self._throttle.begin(user_id, ip)  # NIST SP 800-63B §5.2.2: reserved before comparing
        if isinstance(attempt, int):
            raise FactorError("Too many attempts. Please wait a moment and try again.", attempt)
        now = self._clock.now()
        step = totp.match(self._secret(factor), code, now, after_step=factor.last_step)
        if step is None or not self.store.accept_step(factor.id, step, now, confirm=True):
            raise FactorError("That code is not correct. Check the time on your phone and try again.",
                              attempt.failure())  # fmt: skip
        attempt.success()
        actor = actor or user_id
        self._audit.record("factor.added", actor=actor, subject=user_id, kind=TOTP, factor_id=factor.id, ip=ip)
        return replace(factor, confirmed_at=now, last_step=step, last_used_at=now)

    # -- verification --------------------------------------------------------------------
    def verify(self, user_id: str, code: str, *, ip: str) -> Outcome:
        """A code from an authenticator app or a recovery code, for a person signing in or stepping up."""
        attempt = self._throttle.begin(user_id, ip)  # NIST SP 800-63B §5.2.2: reserved before comparing
        if isinstance(attempt, int):
            return Throttled(attempt)
        now = self._clock.now()
        verified: Verified | None = None
        if totp.normalize(code):
            for factor in self.confirmed(user_id, TOTP):
                step = totp.match(self._secret(factor), code, now, after_step=factor.last_step)
                # One conditional write: of concurrent uses of one code, at most one passes (RFC 6238 §5.2).
                if step is not None and self.store.accept_step(factor.id, step, now):
                    verified = Verified(TOTP, "otp", factor.id)
                    break
        elif recovery.normalize(code):
            digest = self._digester.digest(recovery.digest_input(user_id, code))
            if self._codes.use(user_id, digest, now):  # one-time: a second use finds it spent
                verified = Verified("recovery", "otp", None, self._codes.remaining(user_id))
        if verified is None:
            retry = attempt.failure()
            self._audit.record("factor.failed", actor=user_id, subject=user_id, ip=ip)
            return Rejected(retry)
        attempt.success()
        if verified.kind == "recovery":
            self._audit.record("factor.recovery_code_used", actor=user_id, subject=user_id, ip=ip,
                               left=verified.recovery_left)  # fmt: skip
        return verified

    # -- recovery codes ------------------------------------------------------------------
    def new_recovery_codes(self, user_id: str, *, actor: str | None = None) -> list[str]:
        """Ten fresh codes, shown once; the previous ones stop working."""
        codes = recovery.new_codes()
        digests = [self._digester.digest(recovery.digest_input(user_id, code)) for code in codes]
        self._codes.replace(user_id, digests, self._clock.now())
        self._audit.record("factor.recovery_codes_generated", actor=actor or user_id, subject=user_id)
        return codes

    # -- removal -------------------------------------------------------------------------
    def remove(self, user_id: str, factor_id: str, *, actor: str | None = None) -> bool:
        """Remove one factor; with the last one go the recovery codes (they stand in for a factor)."""
        removed = self.store.delete(user_id, [factor_id])
        if not removed:
            return False
        self._audit.record("factor.removed", actor=actor or user_id, subject=user_id, kind=removed[0].kind,
                           factor_id=factor_id)  # fmt: skip
        if not self.confirmed(user_id):
            self._codes.delete(user_id)
        return True

    def reset(self, user_id: str, *, actor: str, reason: str = "") -> int:
        """An operator's reset: every factor and recovery code of the user; returns the factors removed."""
        removed = self.store.delete(user_id)
        codes = self._codes.delete(user_id)
        self._audit.record("factor.reset", actor=actor, subject=user_id, factors=len(removed), recovery_codes=codes,
                           reason=reason)  # fmt: skip
        return len(removed)

    def _secret(self, factor: Factor) -> str:
        if factor.secret_enc is None:
            raise FactorError("This factor has no secret.")
        return self._sealer.open(factor.secret_enc, _aad(factor.id)).decode()


def _clean_name(name: str) -> str:
    return " ".join(name.split())[:MAX_NAME] if name.isprintable() else ""
