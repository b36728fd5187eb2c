"""The packed jti table answers exactly as a plain dict of entries would, whatever the sequence of changes."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from idp.denylist.denyset import DenySet
from idp.denylist.entries import DenyEntry
from idp.denylist.jtitable import JtiTable

JTIS = st.sampled_from(["a", "b", "j1", "x" * 16, "AbCdEfGh-_12", "x" * 17, "é", "nul\0"])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), JTIS, st.integers(0, 20)),
        st.tuples(st.just("remove"), st.integers(1, 60), st.just(0)),
        st.tuples(st.just("prune"), st.integers(0, 20), st.just(0)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_table_matches_a_reference_dict(ops: list[tuple[str, object, int]]) -> None:
    table, ref = JtiTable(), {}  # ref: id -> (jti, expires_at)
    next_id = 1
    for op, arg, n in ops:
        if op == "add" and isinstance(arg, str) and JtiTable.packable(arg):
            table.add(next_id, arg, float(n))
            ref[next_id] = (arg, float(n))
            next_id += 1
        elif op == "remove":
            assert table.remove(int(arg)) == (ref.pop(int(arg))[0] if arg in ref else None)  # type: ignore[call-overload]
        elif op == "prune":
            gone = [i for i, (_, exp) in ref.items() if exp <= n]
            assert table.prune(float(n)) == len(gone)
            for i in gone:
                del ref[i]
        assert len(table) == len(ref)
        live = {jti for jti, _ in ref.values()}
        for jti in ["a", "b", "j1", "x" * 16, "AbCdEfGh-_12", "x" * 17, "zz", 5, None]:
            assert (jti in table) == (jti in live)
        assert sorted(table.rows()) == sorted((i, jti, exp) for i, (jti, exp) in ref.items())
        assert table.next_expiry() == min((exp for _, exp in ref.values()), default=math.inf)


@settings(max_examples=200, deadline=None)
@given(OPS)
def test_denyset_with_packed_and_unpacked_jtis_matches_a_reference(ops: list[tuple[str, object, int]]) -> None:
    ds, ref = DenySet(), {}  # ref: id -> DenyEntry
    next_id = 1
    for op, arg, n in ops:
        if op == "add" and isinstance(arg, str):
            ds.add(DenyEntry(next_id, "jti", arg, float(n)))
            ref[next_id] = DenyEntry(next_id, "jti", arg, float(n))
            next_id += 1
        elif op == "remove":
            assert ds.discard(int(arg)) == (ref.pop(int(arg), None) is not None)  # type: ignore[call-overload]
        elif op == "prune":
            gone = [i for i, e in ref.items() if e.expires_at <= n]
            assert ds.prune(float(n)) == len(gone)
            for i in gone:
                del ref[i]
        assert ds.entries() == sorted(ref.values(), key=lambda e: e.id)
        assert len(ds) == len(ref)
        live = {e.value for e in ref.values()}
        for jti in ["a", "j1", "x" * 16, "x" * 17, "é", "nul\0", "zz"]:
            assert ds.is_denied({"jti": jti, "iat": 0}) == (jti in live)
        for i in range(1, next_id):
            assert ds.get(i) == ref.get(i)


def test_a_repeated_id_is_ignored_and_a_snapshot_replaces_the_packed_rows() -> None:
    ds = DenySet([DenyEntry(1, "jti", "j1", 10.0), DenyEntry(2, "jti", "j2", 10.0)], 2)
    ds.add(DenyEntry(1, "jti", "other", 10.0))  # a replayed change: already held
    assert not ds.is_denied({"jti": "other"})
    assert len(ds) == 2
    ds.replace([DenyEntry(3, "jti", "j3", 10.0)], 3)
    assert ds.is_denied({"jti": "j3"}) and not ds.is_denied({"jti": "j1"})
    assert [e.id for e in ds.entries()] == [3]


def test_growth_and_compaction_keep_every_row() -> None:
    table = JtiTable()
    for i in range(1, 5001):
        table.add(i, f"j{i}", float(i))
    assert all(f"j{i}" in table for i in range(1, 5001))
    assert table.prune(4000.0) == 4000  # compacts: most rows were dead
    assert len(table) == 1000
    assert all((f"j{i}" in table) == (i > 4000) for i in range(1, 5001))
    assert table.find(4500) >= 0 and table.find(10) == -1


def test_a_packed_entry_costs_well_under_100_bytes() -> None:
    table = JtiTable()
    for i in range(1, 20_001):
        table.add(i, f"AbCdEfGh{i:04x}", 1e9)
    assert table.nbytes() / len(table) < 100
