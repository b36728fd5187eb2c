"""The dispatcher: delivery by exact type, in subscription order, exceptions reach the publisher."""

from __future__ import annotations

import pytest

from idp.events import Events, GrantRevoked, SessionsEnded, UserDisabled


def test_handlers_run_in_subscription_order_with_the_event() -> None:
    events, seen = Events(), []
    events.subscribe(UserDisabled, lambda e: seen.append(("first", e)))
    events.subscribe(UserDisabled, lambda e: seen.append(("second", e)))
    event = UserDisabled("u1", actor="cli")
    events.publish(event)
    assert seen == [("first", event), ("second", event)]


def test_delivery_is_by_exact_type_and_an_event_without_handlers_is_fine() -> None:
    events, seen = Events(), []
    events.subscribe(UserDisabled, seen.append)
    events.publish(SessionsEnded((), actor="a", reason="r"))
    assert seen == []


def test_an_exception_reaches_the_publisher_and_stops_the_later_handlers() -> None:
    events, seen = Events(), []

    def broken(event: GrantRevoked) -> None:
        raise RuntimeError("down")

    events.subscribe(GrantRevoked, broken)
    events.subscribe(GrantRevoked, seen.append)
    with pytest.raises(RuntimeError, match="down"):
        events.publish(GrantRevoked("g", "c", None, actor="a", reason="r"))
    assert seen == []


def test_subscribe_returns_the_unsubscribe() -> None:
    events, seen = Events(), []
    stop = events.subscribe(UserDisabled, seen.append)
    stop()
    events.publish(UserDisabled("u1", actor="cli"))
    assert seen == []
