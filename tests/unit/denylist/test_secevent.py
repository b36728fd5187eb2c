"""Deny-list changes as RFC 8417 Security Event Tokens: the claims, and reading a change back."""

from __future__ import annotations

import pytest

from idp.denylist.entries import DenyChange, DenyEntry
from idp.denylist.secevent import EVENT_DENY, change_from_claims, set_claims

T = 1_700_000_000.0


def test_a_set_carries_one_change_under_the_deny_event() -> None:
    change = DenyChange(12, entry=DenyEntry(12, "subject", "u_123", T + 700, T - 1, reason="private"))
    claims = set_claims(change, issuer="https://idp.example", now=T + 0.9)
    assert claims["iss"] == "https://idp.example" and claims["iat"] == int(T)
    assert "exp" not in claims  # RFC 8417 §2.2: a SET describes what happened; versions order them
    assert claims["events"] == {EVENT_DENY: change.public()}
    assert "private" not in str(claims)
    assert change_from_claims(claims) == change


def test_each_set_has_its_own_jti() -> None:
    change = DenyChange(13, removed=12)
    assert set_claims(change, issuer="i", now=T)["jti"] != set_claims(change, issuer="i", now=T)["jti"]


@pytest.mark.parametrize("claims", [{}, {"events": []}, {"events": {"https://other/event": {}}}])
def test_a_token_without_a_deny_event_is_refused(claims: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="^not a deny-list event$"):
        change_from_claims(claims)
