"""Deny-list entries and changes: their public (wire) shape, and refusing anything malformed."""

from __future__ import annotations

import math

import pytest

from idp.denylist.entries import DenyChange, DenyEntry, check_new_entry

T = 1_700_000_000.0


def test_public_round_trip_without_operator_context() -> None:
    e = DenyEntry(3, "subject", "u1", T + 600, T, reason="stolen phone", actor="admin")
    data = e.public()
    assert "reason" not in data and "actor" not in data
    assert DenyEntry.from_public(data) == e
    change = DenyChange(4, removed=3)
    assert DenyChange.from_public(change.public()) == change


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"id": 1, "kind": "user", "value": "x", "expires_at": T},
        {"id": "1", "kind": "jti", "value": "x", "expires_at": T},
        {"id": 1, "kind": "jti", "value": "", "expires_at": T},
        {"id": 1, "kind": "jti", "value": "x", "expires_at": "soon"},
        {"id": 1, "kind": "subject", "value": "x", "expires_at": T},  # a cut-off needs not_before
        {"id": 1, "kind": "jti", "value": "x" * 201, "expires_at": T},
    ],
)
def test_malformed_entries_are_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DenyEntry.from_public(data)


@pytest.mark.parametrize("data", [None, {}, {"version": 0, "op": "add"}, {"version": 2, "op": "remove", "id": "3"}])
def test_malformed_changes_are_refused(data: object) -> None:
    with pytest.raises(ValueError):
        DenyChange.from_public(data)  # type: ignore[arg-type]


def test_admin_view_adds_the_operator_context() -> None:
    e = DenyEntry(3, "jti", "j1", T + 600, reason="stolen phone", actor="admin:ops", created_at=T)
    assert e.admin() == {
        "id": 3, "kind": "jti", "value": "j1", "expires_at": T + 600,
        "reason": "stolen phone", "actor": "admin:ops", "created_at": T,
    }  # fmt: skip


def test_add_change_round_trip_and_wire_shape() -> None:
    e = DenyEntry(5, "jti", "j1", T + 600)  # no not_before on the wire for a jti entry
    change = DenyChange(6, entry=e)
    assert change.public() == {"version": 6, "op": "add", "entry": {"id": 5, "kind": "jti", "value": "j1",
                                                                     "expires_at": T + 600}}  # fmt: skip
    assert DenyChange.from_public(change.public()) == change
    assert DenyChange.from_public({"version": 1, "op": "remove", "id": 2}) == DenyChange(1, removed=2)


@pytest.mark.parametrize("length", [1, 200])
def test_value_length_bounds_are_inclusive(length: int) -> None:
    data = {"id": 1, "kind": "jti", "value": "x" * length, "expires_at": T}
    assert DenyEntry.from_public(data).value == "x" * length


@pytest.mark.parametrize(
    "data",
    [
        {"id": 1, "kind": "jti", "value": "x", "expires_at": math.inf},
        {"id": 1, "kind": "jti", "value": "x", "expires_at": True},
        {"id": 1, "kind": "jti", "value": "x", "expires_at": T, "not_before": math.nan},
        {"id": True, "kind": "jti", "value": "x", "expires_at": T},
        {"id": 1, "kind": "jti", "value": 7, "expires_at": T},
    ],
)
def test_entries_with_non_finite_or_odd_values_are_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="^malformed deny entry$"):
        DenyEntry.from_public(data)


def test_error_messages() -> None:
    with pytest.raises(ValueError, match="^deny entry lacks id, kind, value or expires_at$"):
        DenyEntry.from_public({"id": 1})
    with pytest.raises(ValueError, match="^malformed deny change$"):
        DenyChange.from_public([])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^malformed deny change version$"):
        DenyChange.from_public({"version": 0, "op": "remove", "id": 1})
    with pytest.raises(ValueError, match="^malformed deny change version$"):
        DenyChange.from_public({"version": True, "op": "remove", "id": 1})
    with pytest.raises(ValueError, match="^malformed deny change$"):
        DenyChange.from_public({"version": 1, "op": "rename", "id": 1})


@pytest.mark.parametrize(
    ("kind", "value", "until", "message"),
    [
        ("user", "u1", None, "^kind must be one of jti, subject, session, client, kid$"),
        ("jti", "", None, "^value must be 1..200 characters$"),
        ("jti", "x" * 201, None, "^value must be 1..200 characters$"),
        ("jti", "j1", math.inf, "^until must be a finite time$"),
        ("jti", "j1", math.nan, "^until must be a finite time$"),
    ],
)
def test_a_new_entry_no_writer_may_add_is_refused(kind: str, value: str, until: float | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_new_entry(kind, value, until)


def test_a_new_entry_within_bounds_passes() -> None:
    for kind in ("jti", "subject", "session", "client", "kid"):
        check_new_entry(kind, "x" * 200, T)
    check_new_entry("jti", "j", None)
