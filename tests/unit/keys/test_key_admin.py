"""KeyAdmin: each key action writes its audit event; a compromise publishes KeyCompromised."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from idp.events import Events, KeyCompromised
from idp.keys.admin import KeyAdmin


class Keyring:
    policy = SimpleNamespace(algorithms=("RS256", "ES256"))

    def _row(self, kid: str, alg: str = "RS256") -> Any:
        return SimpleNamespace(kid=kid, alg=alg)

    def rotate(self, alg: str) -> Any:
        return self._row(f"new-{alg}", alg)

    def retire(self, kid: str) -> Any:
        if kid == "gone":
            raise LookupError(kid)
        return self._row(kid)

    revoke = retire

    def add_imported(self, pem: bytes) -> Any:
        return self._row("imp", "ES256")


class Audit:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, dict[str, Any]]] = []

    def record(self, action: str, *, actor: str = "system", **detail: Any) -> None:
        self.rows.append((action, actor, detail))


def setup() -> tuple[KeyAdmin, Audit, list[tuple[str, str]]]:
    hooks: list[tuple[str, str]] = []
    audit, events = Audit(), Events()
    events.subscribe(KeyCompromised, lambda e: hooks.append((e.kid, e.actor)))
    return KeyAdmin(Keyring(), audit, events), audit, hooks  # type: ignore[arg-type]


def test_rotate_every_algorithm_or_one() -> None:
    admin, audit, _ = setup()
    assert [r.kid for r in admin.rotate(None, actor="cli")] == ["new-RS256", "new-ES256"]
    admin.rotate("ES256", actor="admin:ops")
    assert audit.rows == [
        ("key.rotated", "cli", {"kid": "new-RS256", "alg": "RS256"}),
        ("key.rotated", "cli", {"kid": "new-ES256", "alg": "ES256"}),
        ("key.rotated", "admin:ops", {"kid": "new-ES256", "alg": "ES256"}),
    ]


def test_retire_revoke_import() -> None:
    admin, audit, hooks = setup()
    admin.retire("k1", actor="cli")
    admin.revoke("k2", actor="admin:ops")
    admin.import_pem(b"pem", actor="cli")
    assert hooks == [("k2", "admin:ops")]
    assert audit.rows == [
        ("key.retired", "cli", {"kid": "k1"}),
        ("key.compromised", "admin:ops", {"kid": "k2"}),
        ("key.imported", "cli", {"kid": "imp", "alg": "ES256"}),
    ]


def test_an_unknown_key_writes_nothing() -> None:
    admin, audit, hooks = setup()
    with pytest.raises(LookupError):
        admin.revoke("gone", actor="cli")
    assert audit.rows == [] and hooks == []
