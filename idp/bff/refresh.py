"""Keeping a session's access token valid: refresh once, for everyone.

idp rotates refresh tokens and treats a second use of one as theft (it revokes the whole family), so a
page that fires twenty API calls the moment its access token lapses must cause exactly one refresh:

* within a process, concurrent callers for one session share one refresh task (:class:`SingleFlight`);
* across workers, the store's lease picks one refresher; the others poll the store, with a bounded
  backoff through an injected ``sleep``, until the session's ``version`` moves, then use the new tokens;
* the refresher re-reads the session after taking the lease (another worker may have refreshed between
  our read and our lease) and writes the rotated set by compare-and-set on ``version``.

The lease outlives the token call (``lease_ttl`` > the endpoint's bound), so a slow idp never lets a
second worker refresh with the same token. The refresh runs as a task shielded from its callers: a
browser that disconnects mid-refresh must not cancel the write of tokens idp has already rotated.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections.abc import Awaitable, Callable

from idp.bff.session import BffSession, SessionStore, TokenSet
from idp.bff.singleflight import SingleFlight
from idp.bff.token_endpoint import (
    IdpRefused,
    IdpUnavailable,
    SessionEnded,
    TokenEndpoint,
    TokenError,
    expires_in,
)
from idp.clock import Clock

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

DEFAULT_SKEW = 45.0  # refresh this long before the access token lapses: upstream clocks and queues drift
# Refusals that mean the grant behind the session is over: sign in again.
ENDING_ERRORS = frozenset({"invalid_grant"})
CAS_ATTEMPTS = 3


class TokenKeeper:
    """Returns the session with an access token valid for at least ``skew`` more seconds, refreshing it
    at idp when needed. Raises :class:`SessionEnded` (after deleting the session) when the refresh token
    is refused or the session is gone, :class:`IdpUnavailable` when idp is down (the session stays)."""

    def __init__(
        self,
        store: SessionStore,
        endpoint: TokenEndpoint,
        clock: Clock,
        *,
        skew: float = DEFAULT_SKEW,
        lease_ttl: float | None = None,
        wait_budget: float = 5.0,
        first_backoff: float = 0.05,
        max_backoff: float = 0.5,
        default_expires_in: float = 300.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        lease_ttl = endpoint.bound + 5.0 if lease_ttl is None else lease_ttl
        if lease_ttl <= endpoint.bound:
            raise ValueError("lease_ttl must exceed the token endpoint timeout, or two workers could refresh")
        if skew < 0 or wait_budget <= 0 or first_backoff <= 0 or max_backoff < first_backoff:
            raise ValueError("skew >= 0, wait_budget > 0, 0 < first_backoff <= max_backoff")
        self.store = store
        self.endpoint = endpoint
        self.clock = clock
        self.skew = skew
        self.lease_ttl = lease_ttl
        self.wait_budget = wait_budget
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.default_expires_in = default_expires_in
        self._sleep = sleep
        self._flights: SingleFlight[str, BffSession] = SingleFlight()

    def fresh_enough(self, tokens: TokenSet) -> bool:
        return self.clock.now() < tokens.access_expires_at - self.skew

    async def current(self, session: BffSession, *, force: bool = False) -> BffSession:
        """``session`` itself while its access token is fresh, else the session after one refresh. With
        ``force``, refresh even a fresh token, unless the stored session has moved past ``session``'s
        version already (someone else refreshed since): for a token idp has stopped accepting."""
        if not force and self.fresh_enough(session.tokens):
            return session
        return await self._flights.run(session.key, lambda: self._refresh(session, force))

    async def _refresh(self, seen: BffSession, force: bool) -> BffSession:
        owner = secrets.token_urlsafe(12)
        spent = 0.0
        backoff = self.first_backoff
        while True:
            if await self.store.lease(seen.key, owner, self.lease_ttl):
                try:
                    return await self._refresh_leased(seen, force)
                finally:
                    await self.store.release(seen.key, owner)
            # Another worker is refreshing: wait for its write instead of presenting the same token.
            latest = await self.store.get(seen.key)
            if latest is None:
                raise SessionEnded("the session has ended")
            if latest.version != seen.version and self.fresh_enough(latest.tokens):
                return latest
            if spent >= self.wait_budget:
                raise IdpUnavailable("another worker's refresh did not finish in time")
            delay = min(backoff, self.max_backoff, self.wait_budget - spent)
            await self._sleep(delay)
            spent += delay
            backoff *= 2

    async def _refresh_leased(self, seen: BffSession, force: bool) -> BffSession:
        key = seen.key
        current = await self.store.get(key)
        if current is None:
            raise SessionEnded("the session has ended")
        if self.fresh_enough(current.tokens) and not (force and current.version == seen.version):
            return current  # another worker refreshed between our read and our lease
        refresh_token = current.tokens.refresh_token
        if not refresh_token:
            await self.store.delete(key)
            raise SessionEnded("the access token is no longer usable and the session holds no refresh token")
        try:
            body = await self.endpoint.post({"grant_type": "refresh_token", "refresh_token": refresh_token})
        except TokenError as exc:
            if exc.error in ENDING_ERRORS:
                await self.store.delete(key)
                raise SessionEnded("idp refused the session's refresh token") from None
            log.warning("refresh refused by idp: %s (HTTP %s)", exc.error, exc.status)
            raise IdpRefused(f"idp refused the refresh: {exc.error}") from None
        tokens = self._token_set(body, current.tokens)
        return await self._write(current, tokens)

    def _token_set(self, body: dict[str, object], old: TokenSet) -> TokenSet:
        access = body.get("access_token")
        if not isinstance(access, str) or not access or str(body.get("token_type", "")).lower() != "bearer":
            raise IdpUnavailable("the token endpoint answered without a bearer access token")
        refresh = body.get("refresh_token")
        id_token = body.get("id_token")
        scope = body.get("scope")
        return TokenSet(
            access_token=access,
            access_expires_at=self.clock.now() + expires_in(body, self.default_expires_in),
            # RFC 6749 §6: a refresh response may omit refresh_token; the old one then stays valid.
            refresh_token=refresh if isinstance(refresh, str) and refresh else old.refresh_token,
            id_token=id_token if isinstance(id_token, str) and id_token else old.id_token,
            scope=scope if isinstance(scope, str) else old.scope,
        )

    async def _write(self, base: BffSession, tokens: TokenSet) -> BffSession:
        """Compare-and-set the rotated tokens. Another write to the session meanwhile (not a refresh: we
        hold the lease) is kept, with our tokens on top; a deleted session stays deleted."""
        for _ in range(CAS_ATTEMPTS):
            updated = dataclasses.replace(base, tokens=tokens, version=base.version + 1)
            if await self.store.replace(updated, expected_version=base.version):
                return updated
            latest = await self.store.get(base.key)
            if latest is None:
                raise SessionEnded("the session ended while it was being refreshed")
            base = latest
        raise IdpUnavailable("the session kept changing while it was being refreshed")
