"""A sign-in between its password and its second factor: the person is not signed in yet.

After the password, when the person has a second factor (or must enrol one), no session exists until the
second step passes. What the first step established lives here, in the ephemeral store, for
:data:`TTL` seconds under the digest of a random token the browser holds in a ``__Host-`` cookie: who,
which methods were used when, where the sign-in returns to, and the CSRF secret of the second step's
forms. Finishing takes the record once (atomic), so one password step yields at most one session.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field

import orjson

from idp.clock import Clock
from idp.crypto import Digester
from idp.ephemeral import EphemeralStore

TTL = 300.0
TOKEN_BYTES = 32


@dataclass
class SecondStep:
    user_id: str
    factors: list[tuple[str, float]]  # the methods passed so far, with when
    expires_at: float
    csrf_secret: str  # hex; the second step's forms are bound to it
    interaction: str = ""  # the parked authorization request the sign-in finishes, if any
    next_path: str = ""
    enrol: bool = False  # the policy requires a factor the person does not have yet: enrol before finishing
    enrol_factor_id: str = ""  # the enrolment under way
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def csrf_key(self) -> bytes:
        return bytes.fromhex(self.csrf_secret)


class SecondSteps:
    def __init__(self, store: EphemeralStore, digester: Digester, clock: Clock) -> None:
        self._store = store
        self._digester = digester
        self._clock = clock

    def _key(self, token: str | None) -> str | None:
        if not token or len(token) > 64:
            return None
        return "signin2:" + self._digester.digest("second-step:" + token).hex()

    def start(
        self, user_id: str, factors: list[tuple[str, float]], *, interaction: str, next_path: str, enrol: bool
    ) -> tuple[str, SecondStep]:
        """The token for the browser's cookie, and the record."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        step = SecondStep(
            user_id=user_id, factors=list(factors), expires_at=self._clock.now() + TTL,
            csrf_secret=secrets.token_hex(32), interaction=interaction, next_path=next_path, enrol=enrol,
        )  # fmt: skip
        self.save(token, step)
        return token, step

    def save(self, token: str, step: SecondStep) -> None:
        key = self._key(token)
        if key is not None:
            self._store.put(key, orjson.dumps(asdict(step)), max(step.expires_at - self._clock.now(), 1.0))

    def get(self, token: str | None) -> SecondStep | None:
        key = self._key(token)
        raw = self._store.get(key) if key else None
        return self._decode(raw)

    def finish(self, token: str | None) -> SecondStep | None:
        """Take the record once: of concurrent finishes exactly one gets it."""
        key = self._key(token)
        raw = self._store.take(key) if key else None
        return self._decode(raw)

    def _decode(self, raw: bytes | None) -> SecondStep | None:
        if raw is None:
            return None
        data = orjson.loads(raw)
        data["factors"] = [(str(m), float(t)) for m, t in data.get("factors", [])]
        step = SecondStep(**data)
        return step if step.expires_at > self._clock.now() else None
