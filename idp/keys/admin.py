"""What an operator does to signing keys, the same from the CLI and the admin API, each step audited."""

from __future__ import annotations

from typing import Any, Protocol

from idp.events import Events, KeyCompromised
from idp.keys.keyring import Keyring, StoredKey


class Audit(Protocol):
    def record(self, action: str, *, actor: str = ..., **detail: Any) -> None: ...


class KeyAdmin:
    def __init__(self, keyring: Keyring, audit: Audit, events: Events) -> None:
        self._keyring = keyring
        self._audit = audit
        self._events = events

    def rotate(self, alg: str | None, *, actor: str) -> list[StoredKey]:
        """A next key for ``alg``, or for every configured algorithm when None."""
        algs = [alg] if alg else list(self._keyring.policy.algorithms)
        made = [self._keyring.rotate(a) for a in algs]
        for r in made:
            self._audit.record("key.rotated", actor=actor, kid=r.kid, alg=r.alg)
        return made

    def retire(self, kid: str, *, actor: str) -> StoredKey:
        """Raises LookupError for no usable key ``kid``."""
        r = self._keyring.retire(kid)
        self._audit.record("key.retired", actor=actor, kid=r.kid)
        return r

    def revoke(self, kid: str, *, actor: str) -> StoredKey:
        """Compromised: unpublished at once, and every token it signed deny-listed (OIDC Core §10.1.1, RFC 8725).
        Raises LookupError for no usable key ``kid``."""
        r = self._keyring.revoke(kid)
        self._events.publish(KeyCompromised(r.kid, actor))  # its subscribers deny the kid
        self._audit.record("key.compromised", actor=actor, kid=r.kid)
        return r

    def import_pem(self, pem: bytes, *, actor: str) -> StoredKey:
        """Raises KeyImportError for a key idp cannot use."""
        r = self._keyring.add_imported(pem)
        self._audit.record("key.imported", actor=actor, kid=r.kid, alg=r.alg)
        return r
