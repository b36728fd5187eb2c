"""The pure deny-list matcher: each kind matches what it should and nothing else."""

from __future__ import annotations

import math

import pytest

from idp.denylist.denyset import DenySet, issued_at
from idp.denylist.entries import DenyChange, DenyEntry

T = 1_700_000_000.0


def token(**claims: object) -> dict[str, object]:
    base: dict[str, object] = {"sub": "u1", "client_id": "c1", "sid": "s1", "jti": "j1", "iat": T}
    base.update(claims)
    return base


def entry(i: int, kind: str, value: str, *, nb: float | None = None, exp: float = T + 600) -> DenyEntry:
    return DenyEntry(i, kind, value, exp, nb)


def test_empty_set_denies_nothing() -> None:
    assert not DenySet().is_denied(token(), "k1")


def test_jti_matches_only_that_token() -> None:
    ds = DenySet([entry(1, "jti", "j1")])
    assert ds.is_denied(token(jti="j1"))
    assert not ds.is_denied(token(jti="j2"))
    assert not ds.is_denied(token(jti=["j1"]))  # odd types never crash or match


@pytest.mark.parametrize(("kind", "claim"), [("subject", "sub"), ("session", "sid"), ("client", "client_id")])
def test_cutoff_kinds_deny_tokens_issued_before_not_before(kind: str, claim: str) -> None:
    ds = DenySet([entry(1, kind, "X", nb=T)])
    assert ds.is_denied(token(**{claim: "X", "iat": T - 1}))
    assert ds.is_denied(token(**{claim: "X", "iat": T - 0.001}))
    assert not ds.is_denied(token(**{claim: "X", "iat": T}))  # issued at/after the cut-off: a new login
    assert not ds.is_denied(token(**{claim: "X", "iat": T + 5}))
    assert not ds.is_denied(token(**{claim: "other", "iat": T - 1}))


@pytest.mark.parametrize("iat", [None, "yesterday", math.nan, True])
def test_token_without_numeric_iat_is_denied_by_a_cutoff(iat: object) -> None:
    ds = DenySet([entry(1, "subject", "u1", nb=T)])
    claims = token(iat=iat)
    if iat is None:
        del claims["iat"]
    assert ds.is_denied(claims)


def test_kid_denies_everything_it_signed() -> None:
    ds = DenySet([entry(1, "kid", "bad")])
    assert ds.is_denied(token(), "bad")
    assert not ds.is_denied(token(), "good")
    assert not ds.is_denied(token())


def test_latest_cutoff_wins_and_discard_recomputes() -> None:
    ds = DenySet([entry(1, "subject", "u1", nb=T), entry(2, "subject", "u1", nb=T + 100)])
    assert ds.is_denied(token(iat=T + 50))
    assert ds.discard(2)
    assert not ds.is_denied(token(iat=T + 50))
    assert ds.is_denied(token(iat=T - 1))
    assert ds.discard(1)
    assert not ds.is_denied(token(iat=T - 1))
    assert not ds.discard(1)


def test_duplicate_jti_entries_are_counted() -> None:
    ds = DenySet([entry(1, "jti", "j1"), entry(2, "jti", "j1")])
    ds.discard(1)
    assert ds.is_denied(token(jti="j1"))
    ds.discard(2)
    assert not ds.is_denied(token(jti="j1"))


def test_prune_drops_only_expired_entries() -> None:
    ds = DenySet([entry(1, "jti", "j1", exp=T), entry(2, "jti", "j2", exp=T + 10)])
    assert ds.prune(T) == 1
    assert not ds.is_denied(token(jti="j1"))
    assert ds.is_denied(token(jti="j2"))
    assert ds.next_expiry() == T + 10


def test_apply_changes_moves_the_version() -> None:
    ds = DenySet()
    ds.apply(DenyChange(1, entry=entry(1, "jti", "j1")))
    ds.apply(DenyChange(2, removed=1))
    assert ds.version == 2 and len(ds) == 0
    ds.replace([entry(7, "kid", "k")], 9)
    assert ds.version == 9 and ds.is_denied({}, "k")


def test_a_cutoff_denies_a_token_issued_earlier_in_its_own_second() -> None:
    # Issued at T + 0.2 (iat T), cut-off made at T + 0.7: compared exactly, the token is older.
    ds = DenySet([entry(1, "subject", "u1", nb=T + 0.7)])
    assert ds.is_denied(token(iat=T))
    assert ds.is_denied(token(iat=T + 0.69))  # a fractional iat (a refresh row's created_at) too
    assert not ds.is_denied(token(iat=T + 0.7))
    assert not ds.is_denied(token(iat=T + 1))  # what the IdP stamps on a token minted after it


def test_latest_cutoff_is_the_latest_entry_naming_any_of_the_tokens_claims() -> None:
    ds = DenySet([
        entry(1, "subject", "u1", nb=T + 0.3), entry(2, "subject", "u1", nb=T + 0.7),
        entry(3, "session", "s1", nb=T + 0.5), entry(4, "client", "c2", nb=T + 0.9),
    ])  # fmt: skip
    assert ds.latest_cutoff(token()) == T + 0.7
    assert ds.latest_cutoff(token(sub="u2")) == T + 0.5
    assert ds.latest_cutoff(token(sub="u2", client_id="c2")) == T + 0.9
    assert ds.latest_cutoff(token(sub="u2", sid=None)) == -math.inf
    ds.discard(2)
    assert ds.latest_cutoff(token()) == T + 0.5


@pytest.mark.parametrize(
    ("now", "cutoff", "iat"),
    [
        (T + 0.9, -math.inf, T),  # no cut-off
        (T + 0.9, T - 0.5, T),  # a cut-off in an earlier second already spares iat T
        (T + 0.9, T, T),  # not_before on the second itself: iat T is not before it
        (T + 0.9, T + 0.7, T + 1),  # earlier in this second: the next second, so the new token survives it
        (T + 0.9, T + 1, T + 1),  # a writer's clock slightly ahead: still at most 1 s ahead
        (T + 0.9, T + 1.2, T),  # further ahead: "every token until it expires" keeps denying
        (T + 0.9, T + 600, T),
    ],
)
def test_issued_at_steps_past_a_cut_off_made_earlier_in_the_same_second(now: float, cutoff: float, iat: float) -> None:
    stamped = issued_at(now, cutoff)
    assert stamped == iat
    assert isinstance(stamped, int)
    ds = DenySet([entry(1, "subject", "u1", nb=cutoff)]) if math.isfinite(cutoff) else DenySet()
    assert ds.is_denied(token(iat=stamped)) == (cutoff > T + 1)  # only the blanket entries deny it


def test_a_cutoff_at_its_expiry_denies_every_token_issued_while_it_lives() -> None:
    ds = DenySet([entry(1, "client", "c1", nb=T + 600, exp=T + 600)])
    assert ds.is_denied(token(iat=T + 599))
    assert not ds.is_denied(token(client_id="c2", iat=T + 599))


def test_entries_in_id_order_and_get() -> None:
    ds = DenySet([entry(3, "jti", "c"), entry(1, "jti", "a"), entry(2, "kid", "b")])
    assert [e.id for e in ds.entries()] == [1, 2, 3]
    assert ds.get(2) == entry(2, "kid", "b") and ds.get(9) is None
    assert DenySet().next_expiry() == math.inf


def test_versions_follow_entries_and_changes() -> None:
    ds = DenySet()
    ds.add(entry(5, "jti", "a"))
    assert ds.version == 5  # an entry's id is the version that added it
    ds.add(entry(6, "jti", "b"), version=9)
    assert ds.version == 9
    ds.apply(DenyChange(12, entry=entry(7, "jti", "c")))
    assert ds.version == 12  # the change's version, not the entry's id
    ds.discard(7, version=14)
    assert ds.version == 14


def test_discarding_a_kid_entry_lifts_it() -> None:
    ds = DenySet([entry(1, "kid", "k"), entry(2, "jti", "j1")])
    assert ds.discard(1)
    assert not ds.is_denied(token(jti="j2"), "k")
    assert ds.is_denied(token(jti="j1"))


def test_a_cutoff_without_not_before_denies_every_token() -> None:
    ds = DenySet([entry(1, "subject", "u1", nb=None), entry(2, "subject", "u1", nb=T)])
    assert ds.is_denied(token(iat=T + 10**6))
    assert not ds.is_denied(token(sub="u2", iat=T - 1))


def test_duplicate_kid_entries_are_counted() -> None:
    ds = DenySet([entry(1, "kid", "k"), entry(2, "kid", "k")])
    ds.discard(1)
    assert ds.is_denied(token(), "k")  # one entry still names the key
    ds.discard(2)
    assert not ds.is_denied(token(), "k")


def test_an_unknown_kind_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="^unknown deny kind 'user'$"):
        DenySet([entry(1, "user", "u1")])


def test_a_new_set_is_at_version_zero() -> None:
    """Version 1 is the IdP's first change: a set that started at 1 would never ask for it."""
    assert DenySet().version == 0
    assert DenySet([entry(1, "jti", "j1")]).version == 0  # a snapshot's version is given, never guessed
