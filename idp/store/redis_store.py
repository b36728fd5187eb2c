"""Redis-backed ephemeral store, shared by every worker and instance.

Sync methods use one thread-safe ``redis.Redis`` connection pool. Each
``subscribe`` opens its own ``redis.asyncio`` pub/sub connection on the caller's
event loop. Needs Redis >= 6.2 (GETDEL).

Failure policy:

* Connection and timeout errors become :class:`StoreUnavailable` (endpoints answer
  503). The message names the command only, never keys or values: keys can hold
  secrets such as authorization codes.
* A failed command is retried once, right away, on a ConnectionError. This covers
  a stale pooled connection after a Redis restart. If the command reached Redis
  before the connection dropped, the retry can at worst consume a ``take`` value,
  count an ``incr`` or a ``reserve`` twice, or make ``put_if_absent`` report a
  replay. Each of these fails closed. (A ``release`` retried that way gives back
  one reservation too many: one extra attempt, never more.)
* Subscriptions reconnect forever with exponential backoff and jitter (50 ms
  doubling to 5 s). The backoff resets once Redis confirms the subscription. An
  idle connection is probed with PING, so a half-open TCP connection is also
  detected. Delivery is at-most-once: messages published while disconnected are
  lost.

The URL's query options (``?socket_timeout=5``) override the defaults below.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import threading
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from idp import nonblocking
from idp.ephemeral import StoreUnavailable

__all__ = ["RedisStore"]

log = logging.getLogger(__name__)

SOCKET_TIMEOUT = 2.0
CONNECT_TIMEOUT = 1.0
HEALTH_CHECK_INTERVAL = 30
"""Seconds a pooled connection may idle before it is PINGed ahead of its next command."""

RECONNECT_MIN = 0.05
RECONNECT_MAX = 5.0
POLL_INTERVAL = 0.5
"""How often an idle subscription wakes to notice ``close()`` and to check liveness."""
KEEPALIVE_INTERVAL = 15.0
"""Idle seconds on a subscription before it PINGs Redis."""
PONG_TIMEOUT = 5.0
"""Seconds to wait for any reply to that PING before reconnecting."""

_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)

# The window starts at the first increment. The PTTL check (instead of n == 1)
# also fixes up a counter that somehow lost its expiry.
_INCR_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
"""
# INCR unless the counter is already at the limit (EphemeralStore.reserve); 0 means refused.
_RESERVE_SCRIPT = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then
  return 0
end
n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return n
"""
# DECR down to zero, keeping the TTL (EphemeralStore.release).
_RELEASE_SCRIPT = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then
  redis.call('DECR', KEYS[1])
end
return 0
"""
# Set the marker unless present and, only then, take the value: one round trip (EphemeralStore.claim).
_CLAIM_SCRIPT = """
if not redis.call('SET', KEYS[1], '1', 'PX', ARGV[1], 'NX') then
  return {0}
end
local v = redis.call('GETDEL', KEYS[2])
if v then
  return {1, v}
end
return {1}
"""


def _ms(seconds: float) -> int:
    """TTL seconds -> milliseconds for PX/PEXPIRE, at least 1 ms."""
    if not math.isfinite(seconds):
        raise ValueError("ttl must be a finite number of seconds")
    return max(1, round(seconds * 1000))


def _check_value(value: bytes) -> bytes:
    # redis-py would silently encode str/int; keep parity with MemoryStore.
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"value must be bytes, not {type(value).__name__}")
    return bytes(value)


def _reply(value: bytes | str | None) -> bytes | None:
    # redis-py types a reply as bytes | str whatever the client; this one never decodes (no decode_responses).
    if isinstance(value, str):
        raise TypeError("redis client decodes replies")
    return value


@contextlib.contextmanager
def _unavailable(command: str) -> Iterator[None]:
    nonblocking.check()  # work tried on the event loop goes to a thread instead (idp.nonblocking.run_cached)
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"redis unavailable ({command}: {type(exc).__name__})") from exc


class RedisStore:
    """:class:`~idp.ephemeral.EphemeralStore` on Redis; every key and channel gets ``prefix``."""

    def __init__(self, url: str, prefix: str = "idp:") -> None:
        self._url = url
        self._prefix = prefix
        self._closed = threading.Event()
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            health_check_interval=HEALTH_CHECK_INTERVAL,
            retry=Retry(
                ExponentialWithJitterBackoff(cap=0.1, base=0.01),
                retries=1,
                supported_errors=(RedisConnectionError,),
            ),
        )
        self._incr = self._client.register_script(_INCR_SCRIPT)
        self._claim = self._client.register_script(_CLAIM_SCRIPT)
        self._reserve = self._client.register_script(_RESERVE_SCRIPT)
        self._release = self._client.register_script(_RELEASE_SCRIPT)

    def _k(self, key: str) -> str:
        return self._prefix + key

    # -- key/value ---------------------------------------------------------

    def put(self, key: str, value: bytes, ttl: float) -> None:
        value, px = _check_value(value), _ms(ttl)
        with _unavailable("SET"):
            self._client.set(self._k(key), value, px=px)

    def put_if_absent(self, key: str, value: bytes, ttl: float) -> bool:
        value, px = _check_value(value), _ms(ttl)
        with _unavailable("SET NX"):
            return bool(self._client.set(self._k(key), value, px=px, nx=True))

    def get(self, key: str) -> bytes | None:
        with _unavailable("GET"):
            return _reply(self._client.get(self._k(key)))

    def take(self, key: str) -> bytes | None:
        with _unavailable("GETDEL"):
            return _reply(self._client.getdel(self._k(key)))

    def claim(self, marker: str, key: str, ttl: float) -> tuple[bool, bytes | None]:
        with _unavailable("EVALSHA claim"):
            reply = self._claim(keys=[self._k(marker), self._k(key)], args=[_ms(ttl)])
        return bool(reply[0]), (reply[1] if len(reply) > 1 else None)

    def delete(self, key: str) -> None:
        with _unavailable("DEL"):
            self._client.delete(self._k(key))

    def incr(self, key: str, window: float) -> int:
        px = _ms(window)
        with _unavailable("INCR"):
            return int(self._incr(keys=[self._k(key)], args=[px]))

    def reserve(self, key: str, limit: int, window: float) -> int | None:
        px = _ms(window)
        with _unavailable("EVALSHA reserve"):
            n = int(self._reserve(keys=[self._k(key)], args=[int(limit), px]))
        return n or None

    def release(self, key: str) -> None:
        with _unavailable("EVALSHA release"):
            self._release(keys=[self._k(key)])

    def ttl(self, key: str) -> float | None:
        """Seconds left; ``math.inf`` for a key without expiry (never written by this class)."""
        with _unavailable("PTTL"):
            ms = int(self._client.pttl(self._k(key)))
        if ms == -2:
            return None
        if ms == -1:
            return math.inf
        return ms / 1000

    # -- publish/subscribe -------------------------------------------------

    def publish(self, channel: str, message: bytes) -> int:
        message = _check_value(message)
        with _unavailable("PUBLISH"):
            return int(self._client.publish(self._k(channel), message))

    def subscribe(self, channel: str) -> AsyncGenerator[bytes, None]:
        """Messages published after Redis confirms the subscription (soon after the first ``__anext__``).

        Never raises StoreUnavailable: it reconnects until the iterator is closed
        (``aclose``/``aclosing``) or the store is closed, which ends it within
        ``POLL_INTERVAL``.
        """
        return self._subscription(self._k(channel))

    def _async_client(self) -> redis.asyncio.Redis:
        return redis.asyncio.Redis.from_url(
            self._url,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            # Reconnection is ours (with backoff): fail fast inside redis-py.
            retry=redis.asyncio.retry.Retry(NoBackoff(), 0),
        )

    async def _subscription(self, channel: str) -> AsyncGenerator[bytes, None]:
        loop = asyncio.get_running_loop()
        backoff = RECONNECT_MIN
        while not self._closed.is_set():
            client = self._async_client()
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(channel)
                last_rx = last_ping = loop.time()
                while not self._closed.is_set():
                    msg: dict[str, Any] | None = await pubsub.get_message(timeout=POLL_INTERVAL)
                    now = loop.time()
                    if msg is not None:
                        last_rx = now
                        kind = msg["type"]
                        if kind == "message":
                            yield msg["data"]
                        elif kind == "subscribe":
                            backoff = RECONNECT_MIN
                        continue
                    if last_ping > last_rx and now - last_ping > PONG_TIMEOUT:
                        raise RedisTimeoutError("no reply to keepalive PING")
                    if now - max(last_rx, last_ping) >= KEEPALIVE_INTERVAL:
                        await pubsub.ping()
                        last_ping = now
            except _UNAVAILABLE as exc:
                delay = backoff / 2 + random.uniform(0, backoff / 2)
                log.warning(
                    "ephemeral store: subscription lost (%s), reconnecting in %.2fs",
                    type(exc).__name__,
                    delay,
                )
                backoff = min(backoff * 2, RECONNECT_MAX)
                await self._sleep_unless_closed(delay)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
                with contextlib.suppress(RedisError, OSError):
                    await client.aclose()

    async def _sleep_unless_closed(self, delay: float) -> None:
        deadline = asyncio.get_running_loop().time() + delay
        while not self._closed.is_set():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, POLL_INTERVAL))

    # -- lifecycle ---------------------------------------------------------

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except (RedisError, OSError):
            return False

    def close(self) -> None:
        """Close the connection pool and end active subscriptions (within ``POLL_INTERVAL``)."""
        self._closed.set()
        self._client.close()
