"""The keyring: kid-based rotation with states next -> active -> retired -> removed (or compromised).

Which key signs is a pure function of the stored rows and the time: for an
algorithm, the newest key in state ``next`` or ``active`` whose ``activate_after``
has passed. Every worker and instance therefore agrees on the signer without
coordination, and a ``next`` key is published in the JWKS for at least the JWKS
cache lifetime before it can sign (``publish_lead``), so no verifier meets an
unknown ``kid``. ``tick`` persists the transitions that time has already made.

Algorithms are pinned per key: a key verifies only its own ``alg``. HS* and
``none`` do not exist here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from joserfc.jwk import ECKey, KeyParameters, OKPKey, RSAKey

from idp.clock import Clock
from idp.crypto import Sealer, random_id

ALGORITHMS = ("ES256", "RS256", "EdDSA")
PUBLISHED = ("next", "active", "retired")
AnyKey = ECKey | RSAKey | OKPKey


class KeyImportError(ValueError):
    """A key offered for import is weak or of a kind we do not sign with."""


@dataclass
class StoredKey:
    kid: str
    alg: str
    state: str
    private_enc: bytes
    public_jwk: dict[str, Any]
    created_at: float
    activate_after: float
    activated_at: float | None = None
    retired_at: float | None = None
    remove_after: float | None = None
    compromised_at: float | None = None


_R = TypeVar("_R")
KeyChange = Callable[[list[StoredKey]], tuple[_R, list[StoredKey]]]
"""Given every row, returns (result, the rows it added or changed)."""


class KeyStore(Protocol):
    """Durable key rows, shared by all workers and instances."""

    def load(self) -> tuple[int, list[StoredKey]]:
        """(version, rows); version changes whenever any row changes."""
        ...

    def version(self) -> int: ...

    def mutate(self, change: KeyChange[_R]) -> _R:
        """Run ``change(rows) -> (result, dirty_rows)`` under an exclusive keyring lock and persist dirty rows."""
        ...


@dataclass
class KeyPolicy:
    algorithms: tuple[str, ...]
    rotation_seconds: float
    publish_lead: float  # next is published this long before it may sign
    retire_keep: float  # retired keys stay published this long (>= longest token lifetime)


@dataclass
class _Loaded:
    row: StoredKey
    _private: AnyKey | None = field(default=None, repr=False)
    public: AnyKey | None = field(default=None, repr=False)


def generate(alg: str, kid: str | None = None) -> tuple[str, bytes, dict[str, Any]]:
    """Returns (kid, private PEM, public JWK dict)."""
    kid = kid or random_id(6)  # 48 bits: unique among a handful of keys; short, it rides in every token
    params: KeyParameters = {"kid": kid, "alg": alg, "use": "sig"}
    key: AnyKey
    if alg == "ES256":
        key = ECKey.generate_key("P-256", parameters=params)
    elif alg == "RS256":
        key = RSAKey.generate_key(2048, parameters=params)
    elif alg == "EdDSA":
        key = OKPKey.generate_key("Ed25519", parameters=params)
    else:
        raise ValueError(f"unsupported signing algorithm {alg!r}")
    return kid, key.as_pem(private=True), key.as_dict(private=False)


def import_pem(pem: bytes, kid: str | None = None) -> tuple[str, str, bytes, dict[str, Any]]:
    """Validate and import a private key: RSA >= 2048 (RS256), EC P-256 (ES256) or Ed25519 (EdDSA)."""
    try:
        priv = load_pem_private_key(pem, password=None)
    except Exception:
        raise KeyImportError("not an unencrypted PEM private key") from None
    if isinstance(priv, rsa.RSAPrivateKey):
        if priv.key_size < 2048:
            raise KeyImportError(f"RSA key is {priv.key_size} bits; at least 2048 are required")
        alg = "RS256"
    elif isinstance(priv, ec.EllipticCurvePrivateKey):
        if not isinstance(priv.curve, ec.SECP256R1):
            raise KeyImportError(f"EC curve {priv.curve.name} is not supported; use P-256 (ES256)")
        alg = "ES256"
    elif isinstance(priv, ed25519.Ed25519PrivateKey):
        alg = "EdDSA"
    else:
        raise KeyImportError("unsupported key type; use RSA >= 2048, EC P-256 or Ed25519")
    kid = kid or random_id(6)  # 48 bits: unique among a handful of keys; short, it rides in every token
    key = _import_private(alg, pem, kid)
    return kid, alg, key.as_pem(private=True), key.as_dict(private=False)


_KEY_BY_ALG: dict[str, type[AnyKey]] = {"ES256": ECKey, "RS256": RSAKey, "EdDSA": OKPKey}
_KEY_BY_KTY: dict[str, type[AnyKey]] = {"EC": ECKey, "RSA": RSAKey, "OKP": OKPKey}


def _import_private(alg: str, pem: bytes, kid: str) -> AnyKey:
    params: KeyParameters = {"kid": kid, "alg": alg, "use": "sig"}
    return _KEY_BY_ALG[alg].import_key(pem, parameters=params)


def _import_public(jwk: dict[str, Any]) -> AnyKey:
    return _KEY_BY_KTY[jwk["kty"]].import_key(jwk)


class Keyring:
    """In-memory view of the key rows, refreshed when their version changes."""

    def __init__(
        self, store: KeyStore, sealer: Sealer, clock: Clock, policy: KeyPolicy, *, recheck_seconds: float = 2.0
    ) -> None:
        self._store = store
        self._sealer = sealer
        self._clock = clock
        self.policy = policy
        self._recheck = recheck_seconds
        self._lock = threading.Lock()
        self._version = -1
        self._checked_at = float("-inf")
        self._keys: dict[str, _Loaded] = {}
        self.listeners: list[Any] = []  # called with no args after the key set changes

    # -- reading -----------------------------------------------------------------------------
    def refresh(self, *, force: bool = False) -> None:
        now = self._clock.now()
        if not force and now - self._checked_at < self._recheck:
            return
        with self._lock:
            self._checked_at = now
            if not force and self._store.version() == self._version:
                return
            version, rows = self._store.load()
            old = self._keys
            self._keys = {r.kid: old[r.kid] if r.kid in old and old[r.kid].row == r else _Loaded(r) for r in rows}
            changed = version != self._version
            self._version = version
        if changed:
            for listener in list(self.listeners):
                listener()

    @property
    def version(self) -> int:
        return self._version

    def rows(self) -> list[StoredKey]:
        self.refresh()
        return [k.row for k in self._keys.values()]

    def published(self) -> list[StoredKey]:
        return sorted(
            (r for r in self.rows() if r.state in PUBLISHED),
            key=lambda r: (r.alg, r.activate_after, r.kid),
        )

    def signer(self, alg: str) -> tuple[str, AnyKey]:
        """The key that signs ``alg`` now: newest next/active key whose activation time has passed."""
        self.refresh()
        now = self._clock.now()
        best = None
        for loaded in self._keys.values():
            r = loaded.row
            if (
                r.alg == alg
                and r.state in ("next", "active")
                and r.activate_after <= now
                and (best is None or (r.activate_after, r.kid) > (best.row.activate_after, best.row.kid))
            ):
                best = loaded
        if best is None:
            raise LookupError(f"no active {alg} key")
        if best._private is None:
            pem = self._sealer.open(best.row.private_enc, best.row.kid.encode())
            best._private = _import_private(alg, pem, best.row.kid)
        return best.row.kid, best._private

    def verification_key(self, kid: str) -> tuple[str, AnyKey] | None:
        """(pinned alg, public key) for a published kid; None for unknown, removed or compromised keys."""
        self.refresh()
        loaded = self._keys.get(kid)
        if loaded is None or loaded.row.state not in PUBLISHED:
            return None
        if loaded.public is None:
            loaded.public = _import_public(loaded.row.public_jwk)
        return loaded.row.alg, loaded.public

    # -- changing ----------------------------------------------------------------------------
    def _new_row(self, alg: str, now: float, activate_after: float, state: str) -> StoredKey:
        kid, pem, public = generate(alg)
        return StoredKey(
            kid=kid,
            alg=alg,
            state=state,
            private_enc=self._sealer.seal(pem, kid.encode()),
            public_jwk=public,
            created_at=now,
            activate_after=activate_after,
            activated_at=now if state == "active" else None,
        )

    def _apply_time(self, rows: list[StoredKey], now: float) -> list[StoredKey]:
        """Persist transitions time has made: next -> active (retiring the old one), retired -> removed."""
        dirty: list[StoredKey] = []
        for alg in {r.alg for r in rows}:
            ready = [r for r in rows if r.alg == alg and r.state in ("next", "active") and r.activate_after <= now]
            if not ready:
                continue
            newest = max(ready, key=lambda r: (r.activate_after, r.kid))
            for r in ready:
                if r is newest and r.state == "next":
                    r.state, r.activated_at = "active", now
                    dirty.append(r)
                elif r is not newest:
                    r.state, r.retired_at = "retired", now
                    r.remove_after = now + self.policy.retire_keep
                    dirty.append(r)
        for r in rows:
            if r.state == "retired" and r.remove_after is not None and r.remove_after <= now:
                r.state, r.private_enc = "removed", b""
                dirty.append(r)
        return dirty

    def tick(self) -> None:
        """Scheduled maintenance: bootstrap missing keys, start due rotations, persist transitions."""
        now = self._clock.now()

        def change(rows: list[StoredKey]) -> tuple[None, list[StoredKey]]:
            dirty = self._apply_time(rows, now)
            for alg in self.policy.algorithms:
                mine = [r for r in rows if r.alg == alg]
                active = [r for r in mine if r.state == "active"]
                pending = [r for r in mine if r.state == "next"]
                if not active and not pending:
                    # First start: nobody can have cached a JWKS without it, so it may sign at once.
                    new = self._new_row(alg, now, now, "active")
                    rows.append(new)
                    dirty.append(new)
                elif active and not pending and now - (active[0].activated_at or 0) >= self.policy.rotation_seconds:
                    new = self._new_row(alg, now, now + self.policy.publish_lead, "next")
                    rows.append(new)
                    dirty.append(new)
            return None, dirty

        self._store.mutate(change)
        self.refresh(force=True)

    def rotate(self, alg: str) -> StoredKey:
        """Publish a new ``next`` key for ``alg`` (or return the one already pending)."""
        if alg not in ALGORITHMS:
            raise ValueError(f"unsupported signing algorithm {alg!r}")
        now = self._clock.now()

        def change(rows: list[StoredKey]) -> tuple[StoredKey, list[StoredKey]]:
            dirty = self._apply_time(rows, now)
            pending = [r for r in rows if r.alg == alg and r.state == "next"]
            if pending:
                return pending[0], dirty
            new = self._new_row(alg, now, now + self.policy.publish_lead, "next")
            return new, [*dirty, new]

        row = self._store.mutate(change)
        self.refresh(force=True)
        return row

    def add_imported(self, pem: bytes) -> StoredKey:
        kid, alg, clean_pem, public = import_pem(pem)
        now = self._clock.now()
        row = StoredKey(
            kid=kid,
            alg=alg,
            state="next",
            private_enc=self._sealer.seal(clean_pem, kid.encode()),
            public_jwk=public,
            created_at=now,
            activate_after=now + self.policy.publish_lead,
        )
        self._store.mutate(lambda rows: (row, [row]))
        self.refresh(force=True)
        return row

    def _pull(self, kid: str, state: str) -> StoredKey:
        now = self._clock.now()

        def change(rows: list[StoredKey]) -> tuple[StoredKey, list[StoredKey]]:
            target = next((r for r in rows if r.kid == kid), None)
            if target is None or target.state in ("removed", "compromised"):
                raise LookupError(f"no usable key with kid {kid!r}")
            was_signing = target.state == "active" or (target.state == "next" and target.activate_after <= now)
            dirty = [target]
            if state == "compromised":
                target.state, target.compromised_at, target.private_enc = "compromised", now, b""
            else:
                target.state, target.retired_at = "retired", now
                target.remove_after = now + self.policy.retire_keep
            if was_signing:
                others = [r for r in rows if r.alg == target.alg and r.state in ("next", "active") and r is not target]
                if others:
                    # Promote the pending key now: a verifier meeting its kid refetches the JWKS.
                    nxt = max(others, key=lambda r: (r.activate_after, r.kid))
                    nxt.state, nxt.activate_after, nxt.activated_at = "active", now, now
                    dirty.append(nxt)
                else:
                    new = self._new_row(target.alg, now, now, "active")
                    dirty.append(new)
            return target, dirty

        row = self._store.mutate(change)
        self.refresh(force=True)
        return row

    def retire(self, kid: str) -> StoredKey:
        return self._pull(kid, "retired")

    def revoke(self, kid: str) -> StoredKey:
        """Mark compromised: unpublished at once; its private key is wiped."""
        return self._pull(kid, "compromised")


def all_kids(rows: Iterable[StoredKey]) -> list[str]:
    return [r.kid for r in rows]
