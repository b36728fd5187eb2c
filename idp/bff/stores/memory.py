"""The in-process store: the embedded default for one process (sessions end with it).

Records are kept sealed, as the other stores keep them, so a heap dump holds no usable token either; one
lock makes each method atomic (asyncio runs them on one thread, the lock also covers callers from threads).
"""

from __future__ import annotations

import threading
from typing import Any

from idp.bff.sealing import SessionCrypto, from_login_row, from_record, to_login_row, to_record
from idp.bff.session import BffSession, LoginRecord
from idp.clock import Clock


class MemorySessionStore:
    def __init__(self, crypto: SessionCrypto, clock: Clock) -> None:
        self._crypto = crypto
        self._clock = clock
        self._lock = threading.Lock()
        self.records: dict[str, dict[str, Any]] = {}
        self.leases: dict[str, tuple[str, float]] = {}
        self.logins: dict[str, dict[str, Any]] = {}
        self.slots: dict[str, tuple[int, float]] = {}  # counter -> (count, lapses at)

    def _purge(self, now: float) -> None:
        for key in [k for k, r in self.records.items() if r["expires_at"] <= now]:
            del self.records[key]
        for key in [k for k, (_, until) in self.leases.items() if until <= now]:
            del self.leases[key]
        for key in [k for k, r in self.logins.items() if r["expires_at"] <= now]:
            del self.logins[key]
        for key in [k for k, (_, until) in self.slots.items() if until <= now]:
            del self.slots[key]

    async def create(self, session: BffSession) -> None:
        record = to_record(self._crypto, session)
        with self._lock:
            self._purge(self._clock.now())
            self.records[session.key] = record

    async def get(self, key: str) -> BffSession | None:
        with self._lock:
            record = self.records.get(key)
            if record is None or record["expires_at"] <= self._clock.now():
                return None
        return from_record(self._crypto, record)

    async def replace(self, session: BffSession, *, expected_version: int) -> bool:
        record = to_record(self._crypto, session)
        with self._lock:
            current = self.records.get(session.key)
            if current is None or current["expires_at"] <= self._clock.now():
                return False
            if current["version"] != expected_version:
                return False
            self.records[session.key] = record
            return True

    async def delete(self, key: str) -> None:
        with self._lock:
            self.records.pop(key, None)

    async def _delete_where(self, field: str, value: str) -> int:
        now = self._clock.now()
        with self._lock:
            keys = [k for k, r in self.records.items() if r[field] == value]
            live = sum(1 for k in keys if self.records[k]["expires_at"] > now)
            for k in keys:
                del self.records[k]
            return live

    async def delete_by_sid(self, sid: str) -> int:
        return await self._delete_where("sid", sid)

    async def delete_by_sub(self, sub: str) -> int:
        return await self._delete_where("sub", sub)

    async def lease(self, key: str, owner: str, ttl: float) -> bool:
        now = self._clock.now()
        with self._lock:
            held = self.leases.get(key)
            if held is not None and held[1] > now:
                return False
            self.leases[key] = (owner, now + ttl)
            return True

    async def release(self, key: str, owner: str) -> None:
        with self._lock:
            held = self.leases.get(key)
            if held is not None and held[0] == owner:
                del self.leases[key]

    async def put_login(self, record: LoginRecord) -> None:
        row = to_login_row(self._crypto, record)
        with self._lock:
            self._purge(self._clock.now())
            self.logins[record.key] = row

    async def take_login(self, key: str) -> LoginRecord | None:
        with self._lock:
            row = self.logins.pop(key, None)
        if row is None or row["expires_at"] <= self._clock.now():
            return None
        return from_login_row(self._crypto, row)

    async def claim_slot(self, counter: str, limit: int, ttl: float) -> bool:
        now = self._clock.now()
        with self._lock:
            count, until = self.slots.get(counter, (0, now + ttl))
            if until <= now:
                count, until = 0, now + ttl
            if count >= limit:
                return False
            self.slots[counter] = (count + 1, until)
            return True

    async def slots_taken(self, counter: str) -> int:
        with self._lock:
            count, until = self.slots.get(counter, (0, 0.0))
        return count if until > self._clock.now() else 0

    async def free_slot(self, counter: str) -> None:
        with self._lock:
            held = self.slots.get(counter)
            if held is not None and held[0] > 0:
                self.slots[counter] = (held[0] - 1, held[1])

    async def close(self) -> None:
        with self._lock:
            self.records.clear()
            self.leases.clear()
            self.logins.clear()
            self.slots.clear()
