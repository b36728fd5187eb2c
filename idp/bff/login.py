"""Sign-in round trips under way, kept server-side, and how many each client address may hold.

``GET /bff/login`` is anonymous, so what it stores is bounded twice: one record is at most
:data:`MAX_LOGIN_RECORD` bytes (Authlib's state, nonce and verifier are short; ``returnTo`` is at most 512
characters, :mod:`idp.bff.returnto`), and one client address (:func:`idp.interaction.address_key`: an IPv4
address or an IPv6 /64) may hold at most ``login_pending_per_ip`` live records. The cap has the semantics of
idp's for parked ``/authorize`` requests (:class:`idp.interaction.Interactions`): counters live in fixed
windows of the login TTL on the injected clock and a record lives one TTL, so every live record sits in the
current or the previous window's counter; a place is taken with the store's atomic ``claim_slot`` (refused
without counting when the two windows hold the cap) and given back when the callback takes the record. An
abandoned record holds its place until its window's counter is no longer read (one to two TTLs).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from idp.bff.sealing import LOGIN_ID_LENGTH, SessionCrypto, new_login_id
from idp.bff.session import LoginRecord, SessionStore
from idp.clock import Clock
from idp.interaction import address_key

MAX_LOGIN_RECORD = 4096  # bytes of one record's flow and returnTo together, before sealing


class LoginTooLarge(Exception):
    """The round trip's state would exceed :data:`MAX_LOGIN_RECORD`."""


class TooManyLogins(Exception):
    """This client address (or IPv6 /64) has too many sign-ins under way; answered 429 with ``Retry-After``."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


class LoginTransactions:
    def __init__(self, store: SessionStore, crypto: SessionCrypto, clock: Clock, *, ttl: int, per_ip: int) -> None:
        self._store = store
        self._crypto = crypto
        self._clock = clock
        self.ttl = ttl
        self.per_ip = per_ip

    @staticmethod
    def _counter(ip: str, window: int) -> str:
        digest = hashlib.sha256(address_key(ip).encode()).hexdigest()[:32]
        return f"login:{digest}:{window}"

    async def _claim(self, ip: str) -> str:
        """A place for one more live record of ``ip``: its counter, or :class:`TooManyLogins`."""
        now = self._clock.now()
        window = int(now // self.ttl)
        retry = max(1, math.ceil((window + 1) * self.ttl - now))
        earlier = await self._store.slots_taken(self._counter(ip, window - 1))
        counter = self._counter(ip, window)
        if earlier >= self.per_ip or not await self._store.claim_slot(counter, self.per_ip - earlier, 2 * self.ttl):
            raise TooManyLogins(retry)
        return counter

    async def begin(self, flow: Mapping[str, Any], return_to: str, *, ip: str) -> str:
        """Store one round trip; the login id for the cookie. Raises :class:`LoginTooLarge` (before anything
        counts) or :class:`TooManyLogins`."""
        size = len(json.dumps(dict(flow), separators=(",", ":")).encode()) + len(return_to.encode())
        if size > MAX_LOGIN_RECORD:
            raise LoginTooLarge(f"{size} bytes")
        slot = await self._claim(ip)
        login_id = new_login_id()
        record = LoginRecord(
            key=self._crypto.login_key(login_id),
            flow=dict(flow),
            return_to=return_to,
            slot=slot,
            expires_at=self._clock.now() + self.ttl,
        )
        try:
            await self._store.put_login(record)
        except BaseException:
            await self._store.free_slot(slot)  # not stored: its place is free
            raise
        return login_id

    async def finish(self, login_id: str | None) -> LoginRecord | None:
        """Take the record the login cookie names, once (a replayed callback finds nothing), and give its place
        back. None for a missing, malformed, unknown, taken or expired id."""
        if not login_id or len(login_id) != LOGIN_ID_LENGTH:
            return None
        record = await self._store.take_login(self._crypto.login_key(login_id))
        if record is not None and record.slot:
            await self._store.free_slot(record.slot)
        return record
