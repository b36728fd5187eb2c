"""The back-channel logout feature: the sender as a lifespan task, woken by ``SessionsEnded``; the discovery
fields (OIDC Back-Channel Logout 1.0 §2.1); a sweep of old delivered rows."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any

from idp.config import Settings
from idp.events import SessionsEnded
from idp.feature import Feature
from idp.logout.sender import LogoutSender, SenderSettings
from idp.services import Services
from idp.tasks import every

PURGE_SECONDS = 3600.0
KEEP_DELIVERED = 7 * 86_400.0  # delivered rows are kept a week for the operator, then dropped


def sender_settings(s: Settings) -> SenderSettings:
    return SenderSettings(
        timeout=s.backchannel_logout_timeout,
        horizon=s.backchannel_logout_retry_hours * 3600.0,
        per_client=s.backchannel_logout_per_client,
        concurrency=s.backchannel_logout_concurrency,
        poll_seconds=s.backchannel_logout_poll_seconds,
        allow_private=s.backchannel_logout_allow_private,
        allow_loopback=s.backchannel_logout_loopback,
    )


def make_sender(services: Services, **kwargs: Any) -> LogoutSender:
    return LogoutSender(
        services.logout_outbox, services.clients, services.logout_tokens, services.clock, services.metrics,
        services.audit, sender_settings(services.settings), **kwargs,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def _sender(services: Services) -> AsyncIterator[None]:
    sender = make_sender(services)
    await sender.start()
    services.logout_outbox.waiters.append(sender.wake)
    try:
        yield
    finally:
        services.logout_outbox.waiters.remove(sender.wake)
        await sender.stop()


def _purge(services: Services) -> AbstractAsyncContextManager[None]:
    outbox, clock = services.logout_outbox, services.clock
    return every(PURGE_SECONDS, lambda: outbox.purge(clock.now() - KEEP_DELIVERED), name="logout outbox purge")


def _handlers(services: Services) -> Iterable[tuple[type, Callable[[Any], None]]]:
    # After the end committed (SessionsEnded is published then): the rows it wrote are there to claim.
    return [(SessionsEnded, lambda _event: services.logout_outbox.notify())]


BACKCHANNEL_LOGOUT = Feature(
    name="back-channel logout",
    metadata=lambda s: {"backchannel_logout_supported": True, "backchannel_logout_session_supported": True},
    tasks=(_sender, _purge),
    handlers=_handlers,
)
