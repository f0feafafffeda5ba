"""Per-key token buckets: ``rate`` tokens per second, at most ``burst`` saved up, one per request.

:class:`MemoryBuckets` counts in this process; :class:`RedisBuckets` counts in Redis with one
atomic Lua script (its clock is Redis's, so every process shares one bucket per key).
:class:`RateLimiter` uses Redis when configured and falls back to memory while Redis fails: a
Redis outage loosens the limit (per process), it never answers 500.

``take`` answers 0 when the request may go, else the seconds until a token will be there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the redis package is imported only where Redis is configured (~6 MiB)
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)

MAX_MEMORY_BUCKETS = 100_000
REDIS_RETRY_AFTER_S = 5.0

_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(saved[1])
local ts = tonumber(saved[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class Buckets(Protocol):
    async def take(self, key: str) -> float: ...


class MemoryBuckets:
    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    async def take(self, key: str) -> float:
        return self.take_now(key)

    def take_now(self, key: str) -> float:
        now = self._clock()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        if tokens >= 1.0:
            self._store(key, tokens - 1.0, now)
            return 0.0
        self._store(key, tokens, now)
        return (1.0 - tokens) / self.rate

    def _store(self, key: str, tokens: float, now: float) -> None:
        if key not in self._buckets and len(self._buckets) >= MAX_MEMORY_BUCKETS:
            self._forget_full(now)
        self._buckets[key] = (tokens, now)

    def _forget_full(self, now: float) -> None:
        """Buckets that have refilled completely are the same as no bucket."""
        refill_s = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < refill_s}
        if len(self._buckets) >= MAX_MEMORY_BUCKETS:  # all active: keep the limit honest
            self._buckets.clear()


class RedisBuckets:
    def __init__(
        self,
        rate: float,
        burst: int,
        client: Redis[bytes],
        *,
        prefix: str = "facerec:ratelimit:",
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.prefix = prefix
        self._client = client
        self._script = client.register_script(_TAKE)

    async def take(self, key: str) -> float:
        result = await self._script(keys=[self.prefix + key], args=[self.rate, self.burst])
        return float(result.decode() if isinstance(result, bytes) else result)


class RateLimiter:
    """Redis buckets when there are any, memory buckets while Redis fails (it is tried again
    ``REDIS_RETRY_AFTER_S`` after a failure)."""

    def __init__(
        self,
        memory: MemoryBuckets,
        redis: RedisBuckets | None = None,
        *,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self.memory = memory
        self.redis = redis
        self._on_error = on_error or (lambda: None)
        self._redis_down_until = 0.0

    async def take(self, key: str) -> float:
        if self.redis is not None and time.monotonic() >= self._redis_down_until:
            try:
                return await self.redis.take(key)
            except Exception as exc:  # any Redis trouble: count locally instead
                self._redis_down_until = time.monotonic() + REDIS_RETRY_AFTER_S
                self._on_error()
                logger.warning("rate limiting in process, Redis failed: %s", exc)
        return await self.memory.take(key)


def redis_client(url: str, *, timeout: float = 0.25) -> Redis[bytes]:
    """A client that fails fast: short timeouts and no retries."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    client: Redis[bytes] = Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )
    return client
