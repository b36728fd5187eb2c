"""The factor service on both backends: TOTP enrolment and verification on the injected clock, replay,
recovery codes, throttling with the reservation, removal and reset, the secret sealed at rest, audit."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from idp.clock import FrozenClock
from idp.services import Services
from idp.sessions.factors import totp
from idp.sessions.factors.service import FactorError, Rejected, Throttled, Verified
from idp.store.models import AuditEventRow, FactorRow, RecoveryCodeRow
from tests.pagekit import make_user

IP = "198.51.100.7"


def code(secret: str, clock: FrozenClock, offset: int = 0) -> str:
    return totp.code_at(secret, totp.step_at(clock.now()) + offset)


def enrolled(c: Services, clock: FrozenClock) -> tuple[str, str, str]:
    """(user id, factor id, secret) of a user with a confirmed TOTP factor."""
    user = make_user(c)
    started = c.factors.start_totp(user.id, user.username)
    c.factors.confirm_totp(user.id, started.factor_id, code(started.secret, clock), ip=IP)
    clock.advance(totp.STEP)
    return user.id, started.factor_id, started.secret


def actions(c: Services) -> list[str]:
    with c.sessions() as s:
        return [r.action for r in s.scalars(select(AuditEventRow).order_by(AuditEventRow.id))]


async def test_enrolment_is_asked_for_only_once_confirmed(container: Services, clock: FrozenClock) -> None:
    c = container
    user = make_user(c)
    started = c.factors.start_totp(user.id, user.username)
    assert started.uri.startswith("otpauth://totp/idp.test:alice?secret=" + started.secret)
    assert not c.factors.has_second_factor(user.id)
    with pytest.raises(FactorError):
        c.factors.confirm_totp(user.id, started.factor_id, "000000" if code(started.secret, clock) != "000000"
                               else "111111", ip=IP)  # fmt: skip
    assert not c.factors.has_second_factor(user.id)
    c.factors.confirm_totp(user.id, started.factor_id, code(started.secret, clock), ip=IP)
    assert c.factors.has_second_factor(user.id)
    assert "factor.added" in actions(c)


async def test_secret_is_sealed_at_rest(container: Services, clock: FrozenClock) -> None:
    user = make_user(container)
    started = container.factors.start_totp(user.id, user.username)
    with container.sessions() as s:
        row = s.get(FactorRow, started.factor_id)
        assert row is not None and row.secret_enc is not None
        assert started.secret.encode() not in row.secret_enc
        row_bytes = repr(row.__dict__).encode()
    assert started.secret.encode() not in row_bytes


async def test_window_is_one_step_each_way(container: Services, clock: FrozenClock) -> None:
    user_id, _, secret = enrolled(container, clock)
    for offset, ok in ((-2, False), (2, False), (-1, True), (1, True)):
        outcome = container.factors.verify(user_id, code(secret, clock, offset), ip=IP)
        assert isinstance(outcome, Verified) is ok, offset
        clock.advance(3 * totp.STEP)  # a fresh window each round: nothing here is a replay


async def test_a_code_is_refused_a_second_time_within_its_window(container: Services, clock: FrozenClock) -> None:
    """REQUIREMENTS #61, RFC 6238 §5.2: a code accepted once is not accepted again, nor an older one."""
    user_id, _, secret = enrolled(container, clock)
    first = code(secret, clock)
    assert isinstance(container.factors.verify(user_id, first, ip=IP), Verified)
    clock.advance(totp.STEP)  # still within the window: the code is one step old now
    assert isinstance(container.factors.verify(user_id, first, ip=IP), Rejected)
    assert isinstance(container.factors.verify(user_id, code(secret, clock, -1), ip=IP), Rejected)
    assert isinstance(container.factors.verify(user_id, code(secret, clock), ip=IP), Verified)


async def test_concurrent_uses_of_one_code_pass_once(container: Services, clock: FrozenClock) -> None:
    user_id, _, secret = enrolled(container, clock)
    now_code = code(secret, clock)
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda _: container.factors.verify(user_id, now_code, ip=IP), range(8)))
    assert sum(isinstance(o, Verified) for o in outcomes) == 1


async def test_wrong_codes_are_throttled_per_account(container: Services, clock: FrozenClock) -> None:
    user_id, _, secret = enrolled(container, clock)
    limit = container.settings.login_max_failures
    outcomes = [container.factors.verify(user_id, "000001", ip=f"203.0.113.{i}") for i in range(limit + 2)]
    assert any(isinstance(o, Throttled) for o in outcomes)
    # Locked: even the right code is refused without being compared.
    assert isinstance(container.factors.verify(user_id, code(secret, clock), ip=IP), Throttled)
    # A correct password does not clear the count of wrong codes (the two are throttled apart).
    container.throttle.begin("alice", IP).success()  # type: ignore[union-attr]
    assert isinstance(container.factors.verify(user_id, code(secret, clock), ip=IP), Throttled)


async def test_concurrent_wrong_codes_verify_at_most_the_threshold(container: Services, clock: FrozenClock) -> None:
    user_id, _, _ = enrolled(container, clock)
    limit = container.settings.login_max_failures
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda i: container.factors.verify(user_id, "000001", ip=f"203.0.113.{i}"),
                                 range(30)))  # fmt: skip
    assert sum(isinstance(o, Rejected) for o in outcomes) <= limit


async def test_recovery_codes_are_one_time_and_hashed(container: Services, clock: FrozenClock) -> None:
    user_id, _, _ = enrolled(container, clock)
    codes = container.factors.new_recovery_codes(user_id)
    assert len(codes) == 10 and len(set(codes)) == 10
    with container.sessions() as s:
        stored = [r.digest for r in s.scalars(select(RecoveryCodeRow))]
    assert len(stored) == 10 and not any(cd.replace("-", "").encode() in d for cd in codes for d in stored)
    used = container.factors.verify(user_id, codes[3].upper().replace("-", " "), ip=IP)
    assert isinstance(used, Verified) and used.kind == "recovery" and used.recovery_left == 9
    assert isinstance(container.factors.verify(user_id, codes[3], ip=IP), Rejected)
    assert "factor.recovery_code_used" in actions(container)


async def test_regenerating_recovery_codes_voids_the_old_ones(container: Services, clock: FrozenClock) -> None:
    user_id, _, _ = enrolled(container, clock)
    old = container.factors.new_recovery_codes(user_id)
    new = container.factors.new_recovery_codes(user_id)
    assert isinstance(container.factors.verify(user_id, old[0], ip=IP), Rejected)
    assert isinstance(container.factors.verify(user_id, new[0], ip=IP), Verified)


async def test_a_recovery_code_of_another_user_is_refused(container: Services, clock: FrozenClock) -> None:
    user_id, _, _ = enrolled(container, clock)
    bob = make_user(container, "bob")
    codes = container.factors.new_recovery_codes(user_id)
    assert isinstance(container.factors.verify(bob.id, codes[0], ip=IP), Rejected)


async def test_removing_the_last_factor_drops_the_recovery_codes(container: Services, clock: FrozenClock) -> None:
    user_id, factor_id, _ = enrolled(container, clock)
    container.factors.new_recovery_codes(user_id)
    assert not container.factors.remove("someone-else", factor_id)
    assert container.factors.remove(user_id, factor_id)
    assert not container.factors.has_second_factor(user_id)
    assert container.factors.recovery_left(user_id) == 0
    assert "factor.removed" in actions(container)


async def test_reset_removes_everything_and_is_audited(container: Services, clock: FrozenClock) -> None:
    user_id, _, _ = enrolled(container, clock)
    container.factors.new_recovery_codes(user_id)
    assert container.factors.reset(user_id, actor="admin:ops") == 1
    assert not container.factors.has_second_factor(user_id) and container.factors.recovery_left(user_id) == 0
    assert "factor.reset" in actions(container)


async def test_session_records_each_factor_and_when(container: Services, clock: FrozenClock) -> None:
    user = make_user(container)
    t0 = clock.now()
    cookie, session = container.login_sessions.login(user.id)
    assert session.amr == ("pwd",) and session.factor_times() == {"pwd": t0}
    clock.advance(42)
    stepped = container.login_sessions.add_factor(cookie, "otp")
    assert stepped is not None
    new_cookie, session = stepped
    assert new_cookie != cookie and container.login_sessions.current(cookie) is None
    again = container.login_sessions.current(new_cookie)
    assert again is not None and again.amr == ("pwd", "otp", "mfa")
    assert again.factor_times() == {"pwd": t0, "otp": t0 + 42} and again.auth_time == t0 + 42
    assert again.sid == session.sid
