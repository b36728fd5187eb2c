"""The Redis store (redis-py asyncio): several BFF workers and instances share it.

* ``{prefix}s:{key}``: a hash with the record's fields, expiring at ``expires_at`` (PEXPIREAT), so an ended
  session vanishes by itself; reads also check ``expires_at`` against the injected clock.
* ``{prefix}sid:{sid}`` and ``{prefix}sub:{sub}``: sets of record keys, for back-channel logout; each expires
  with the longest-lived session it lists (members whose record is gone are harmless: deleting them ends 0).
* ``{prefix}lease:{key}``: ``SET NX PX`` (one owner; lapses by itself), released by a compare-and-delete.
* ``replace`` is a Lua script: the hash is rewritten only while its ``version`` is still the expected one.
* ``{prefix}login:{key}``: a login record, one JSON string expiring with it (``SET PX``), taken with ``GETDEL``
  (atomic: of concurrent takes one gets the value, the others nothing).
* ``{prefix}slot:{counter}``: a per-address counter, claimed by a Lua check-and-increment, lapsing by itself.

The scripts compute keys from the prefix they are given, so the store expects a single Redis (or keys that
hash alike), not a cluster spread over slots.
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from idp.bff.sealing import SessionCrypto, from_login_row, from_record, to_login_row, to_record
from idp.bff.session import BffSession, LoginRecord
from idp.clock import Clock

_FIELDS = ("key", "sub", "sid", "claims", "tokens", "created_at", "expires_at", "version", "extra")

# KEYS: record, sid index ("" when none), sub index. ARGV: expiry (ms), expected version or "" (create), the
# record key (the index sets' member), then field/value pairs.
_WRITE = """
local rec = KEYS[1]
if ARGV[2] ~= '' then
  if redis.call('HGET', rec, 'version') ~= ARGV[2] then return 0 end
end
redis.call('DEL', rec)
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', rec, unpack(fields))
local at = tonumber(ARGV[1])
redis.call('PEXPIREAT', rec, at)
for i = 2, 3 do
  local idx = KEYS[i]
  if idx ~= '' then
    redis.call('SADD', idx, ARGV[3])
    local left = redis.call('PTTL', idx)
    local now = redis.call('TIME')
    local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
    if left < 0 or now_ms + left < at then redis.call('PEXPIREAT', idx, at) end
  end
end
return 1
"""

# KEYS: the index set. ARGV: the record key prefix. Deletes every record listed, then the set.
_DELETE_INDEXED = """
local n = 0
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  n = n + redis.call('DEL', ARGV[1] .. member)
end
redis.call('DEL', KEYS[1])
return n
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# KEYS: the counter. ARGV: the limit, its lifetime (ms) from the first claim. 1 when a place was taken.
_CLAIM = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return 0 end
if redis.call('INCR', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""

_FREE = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then redis.call('DECR', KEYS[1]) end
return 0
"""


class RedisSessionStore:
    def __init__(
        self, redis: Redis, crypto: SessionCrypto, clock: Clock, *, prefix: str = "bff:", owns: bool = False
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self._crypto = crypto
        self._clock = clock
        self._owns = owns
        self._write = redis.register_script(_WRITE)
        self._delete_indexed = redis.register_script(_DELETE_INDEXED)
        self._release = redis.register_script(_RELEASE)
        self._claim = redis.register_script(_CLAIM)
        self._free = redis.register_script(_FREE)

    @classmethod
    def from_url(cls, url: str, crypto: SessionCrypto, clock: Clock, *, prefix: str = "bff:") -> RedisSessionStore:
        return cls(Redis.from_url(url, decode_responses=True), crypto, clock, prefix=prefix, owns=True)

    def record_key(self, key: str) -> str:
        return f"{self.prefix}s:{key}"

    async def _put(self, session: BffSession, expected: int | None) -> bool:
        record = to_record(self._crypto, session)
        args: list[Any] = [int(session.expires_at * 1000), "" if expected is None else str(expected), session.key]
        for name in _FIELDS:
            value = record[name]
            args += [name, "" if value is None else str(value)]
        keys = [
            self.record_key(session.key),
            f"{self.prefix}sid:{session.sid}" if session.sid else "",
            f"{self.prefix}sub:{session.sub}",
        ]
        return bool(await self._write(keys=keys, args=args))

    async def create(self, session: BffSession) -> None:
        await self._put(session, None)

    async def get(self, key: str) -> BffSession | None:
        raw: dict[str, Any] = await self.redis.hgetall(self.record_key(key))  # type: ignore[assignment]
        if not raw or float(raw["expires_at"]) <= self._clock.now():
            return None
        return from_record(self._crypto, raw)

    async def replace(self, session: BffSession, *, expected_version: int) -> bool:
        if await self.get(session.key) is None:  # gone or past expires_at by our clock
            return False
        return await self._put(session, expected_version)

    async def delete(self, key: str) -> None:
        await self.redis.delete(self.record_key(key))

    async def delete_by_sid(self, sid: str) -> int:
        return int(await self._delete_indexed(keys=[f"{self.prefix}sid:{sid}"], args=[f"{self.prefix}s:"]))

    async def delete_by_sub(self, sub: str) -> int:
        return int(await self._delete_indexed(keys=[f"{self.prefix}sub:{sub}"], args=[f"{self.prefix}s:"]))

    async def lease(self, key: str, owner: str, ttl: float) -> bool:
        ms = max(1, int(ttl * 1000))
        return bool(await self.redis.set(f"{self.prefix}lease:{key}", owner, nx=True, px=ms))

    async def release(self, key: str, owner: str) -> None:
        await self._release(keys=[f"{self.prefix}lease:{key}"], args=[owner])

    def login_record_key(self, key: str) -> str:
        return f"{self.prefix}login:{key}"

    async def put_login(self, record: LoginRecord) -> None:
        ms = max(1, int((record.expires_at - self._clock.now()) * 1000))
        row = json.dumps(to_login_row(self._crypto, record), separators=(",", ":"))
        await self.redis.set(self.login_record_key(record.key), row, px=ms)

    async def take_login(self, key: str) -> LoginRecord | None:
        raw = await self.redis.getdel(self.login_record_key(key))
        if raw is None:
            return None
        row = json.loads(raw)
        if float(row["expires_at"]) <= self._clock.now():
            return None
        return from_login_row(self._crypto, row)

    async def claim_slot(self, counter: str, limit: int, ttl: float) -> bool:
        ms = max(1, int(ttl * 1000))
        return bool(await self._claim(keys=[f"{self.prefix}slot:{counter}"], args=[limit, ms]))

    async def slots_taken(self, counter: str) -> int:
        raw = await self.redis.get(f"{self.prefix}slot:{counter}")
        return int(raw) if raw else 0

    async def free_slot(self, counter: str) -> None:
        await self._free(keys=[f"{self.prefix}slot:{counter}"], args=[])

    async def close(self) -> None:
        if self._owns:
            await self.redis.aclose()
