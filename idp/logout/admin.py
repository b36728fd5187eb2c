"""What an operator does with back-channel logout deliveries, the same from the CLI and the admin API:
list them by state, and send dead ones again (audited as ``logout.retried``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from idp.services import Services
from idp.store.logout_repo import STATES, Delivery

MAX_LIST = 1000


class DeliveryQueryError(ValueError):
    """A bad state or limit; the message is shown as is."""


def list_deliveries(
    c: Services, *, state: str | None = None, client_id: str | None = None, limit: int = 100
) -> list[Delivery]:
    if state is not None and state not in STATES:
        raise DeliveryQueryError(f"state must be one of {', '.join(STATES)}")
    if client_id is not None and not _plain(client_id, 64):
        raise DeliveryQueryError("client_id is at most 64 printable characters")
    if not 1 <= limit <= MAX_LIST:
        raise DeliveryQueryError(f"limit must be 1..{MAX_LIST}")
    return c.logout_outbox.list(state=state, client_id=client_id, limit=limit)


def retry_dead(c: Services, *, actor: str, ids: Sequence[str] = (), client_id: str | None = None) -> list[str]:
    """Dead deliveries (these, or all [of the client]) due again now, with a fresh retry horizon; a running
    sender in this process is woken (others find them within their poll interval). DeliveryQueryError for an
    id or client_id no row can have (PostgreSQL refuses NUL in text: never sent)."""
    if not all(_plain(i, 32) for i in ids) or (client_id is not None and not _plain(client_id, 64)):
        raise DeliveryQueryError("ids are at most 32 and client_id at most 64 printable characters")
    revived = c.logout_outbox.retry(c.clock.now(), ids=list(ids), client_id=client_id)
    if revived:
        detail: dict[str, Any] = {"deliveries": len(revived)}
        if ids:
            detail["ids"] = list(revived)[:50]
        c.audit.record("logout.retried", actor=actor, client_id=client_id, **detail)
        c.metrics.logout_delivery("retried", n=len(revived))
        c.logout_outbox.notify()
    return revived


def _plain(value: str, longest: int) -> bool:
    return 0 < len(value) <= longest and value.isprintable()
