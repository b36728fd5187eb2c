"""Consents: covers() is a subset test, grant() merges, revoke() forgets."""

from __future__ import annotations

from idp.clock import FrozenClock
from idp.sessions.consents import Consents
from tests.unit.sessions.fakes import MemoryConsentStore


def test_covers_grant_merge_revoke():
    clock = FrozenClock(1000.0)
    consents = Consents(MemoryConsentStore(), clock)
    assert not consents.covers("u", "c", ["openid"])
    consents.grant("u", "c", ["openid", "profile"])
    assert consents.covers("u", "c", ["openid"])
    assert consents.covers("u", "c", ["profile", "openid"])
    assert consents.covers("u", "c", [])
    assert not consents.covers("u", "c", ["openid", "email"])
    assert not consents.covers("u", "other", ["openid"])
    assert not consents.covers("other", "c", ["openid"])
    clock.advance(10)
    merged = consents.grant("u", "c", ["email", "openid"])
    assert merged.scopes == ("openid", "profile", "email")
    assert merged.created_at == 1000.0 and merged.updated_at == 1010.0
    assert consents.covers("u", "c", ["openid", "email", "profile"])
    assert [c.client_id for c in consents.list_for_user("u")] == ["c"]
    assert consents.revoke("u", "c")
    assert not consents.covers("u", "c", ["openid"])
    assert not consents.revoke("u", "c")
