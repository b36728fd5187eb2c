"""Authorization codes: single use, replay recognised, expiry by the clock, stored under a digest."""

from __future__ import annotations

import os

import pytest

from idp.clock import FrozenClock
from idp.crypto import Digester
from idp.store.memory import MemoryStore
from idp.tokens.codes import AuthorizationCodes, CodeData, CodeInvalid, CodeReplayed


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(1_700_000_000.0)


@pytest.fixture
def codes(clock: FrozenClock) -> AuthorizationCodes:
    return AuthorizationCodes(MemoryStore(clock), Digester(os.urandom(32)), clock, ttl=60)


def _data() -> CodeData:
    return CodeData(client_id="c", redirect_uri="https://rp/cb", user_id="u", scope="openid", auth_time=1.0,
                    code_challenge="x" * 43, code_challenge_method="S256", nonce="n", sid="s")  # fmt: skip


def test_single_use_and_replay_is_recognised(codes: AuthorizationCodes) -> None:
    code = codes.issue(_data())
    assert len(code) >= 43
    data, digest = codes.redeem(code)
    assert data.client_id == "c" and data.nonce == "n" and data.code_challenge == "x" * 43
    with pytest.raises(CodeReplayed) as exc:
        codes.redeem(code)
    assert exc.value.digest == digest
    assert codes.was_replayed(digest)


def test_expiry_is_checked_against_the_clock(codes: AuthorizationCodes, clock: FrozenClock) -> None:
    code = codes.issue(_data())
    clock.advance(60)
    with pytest.raises(CodeInvalid) as exc:
        codes.redeem(code)
    assert not isinstance(exc.value, CodeReplayed)


def test_unknown_code(codes: AuthorizationCodes) -> None:
    with pytest.raises(CodeInvalid):
        codes.redeem("never-issued")


def test_stored_under_digest_only(codes: AuthorizationCodes) -> None:
    store = codes._store
    code = codes.issue(_data())
    assert store.get(f"code:{code}") is None
    assert store.get(f"code:{codes.digest(code).hex()}") is not None
    assert code.encode() not in (store.get(f"code:{codes.digest(code).hex()}") or b"")


def test_redeemable_until_the_last_second(codes: AuthorizationCodes, clock: FrozenClock) -> None:
    """The store keeps the record at least as long as the code lives: expiry is the clock's call, never the TTL's."""
    code = codes.issue(_data())
    clock.advance(59.9)
    assert codes.redeem(code)[0].client_id == "c"


def test_each_code_has_its_own_single_use_marker(codes: AuthorizationCodes) -> None:
    first, second = codes.issue(_data()), codes.issue(_data())
    codes.redeem(first)
    _, digest = codes.redeem(second)  # redeeming one code does not use up another
    assert not codes.was_replayed(digest)


def test_error_messages_say_what_happened(codes: AuthorizationCodes, clock: FrozenClock) -> None:
    """They become the token endpoint's error_description."""
    code = codes.issue(_data())
    codes.redeem(code)
    with pytest.raises(CodeReplayed) as replayed:
        codes.redeem(code)
    assert str(replayed.value) == "authorization code already used"
    with pytest.raises(CodeInvalid) as unknown:
        codes.redeem("never-issued")
    assert str(unknown.value) == "unknown or expired authorization code"
    late = codes.issue(_data())
    clock.advance(60)
    with pytest.raises(CodeInvalid) as expired:
        codes.redeem(late)
    assert str(expired.value) == "authorization code expired"
