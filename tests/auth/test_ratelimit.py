"""Token buckets: in memory with a fake clock, in the real Redis (db 15), and the fallback."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from facerec.auth.ratelimit import MemoryBuckets, RateLimiter, RedisBuckets, redis_client
from tests.conftest import REDIS_URL, unavailable


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_memory_bucket_burst_then_rate() -> None:
    clock = FakeClock()
    buckets = MemoryBuckets(rate=2.0, burst=3, clock=clock)
    assert [await buckets.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert await buckets.take("k") == pytest.approx(0.5)  # one token every 0.5 s
    clock.now += 0.25
    assert await buckets.take("k") == pytest.approx(0.25)  # refused requests cost nothing
    clock.now += 0.25
    assert await buckets.take("k") == 0.0
    assert await buckets.take("other") == 0.0  # one bucket per key
    clock.now += 100
    assert [await buckets.take("k") for _ in range(4)][:3] == [0.0, 0.0, 0.0]  # capped at burst


@pytest.fixture
async def redis() -> AsyncIterator[Redis[bytes]]:
    client = redis_client(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()  # type: ignore[attr-defined]
        unavailable(f"Redis at {REDIS_URL} ({exc})", "start redis-server")
    yield client
    await client.aclose()  # type: ignore[attr-defined]


@pytest.mark.redis
async def test_redis_bucket_is_shared_and_truthful(redis: Redis[bytes]) -> None:
    prefix = f"facerec-test-{uuid.uuid4().hex[:8]}:"
    one = RedisBuckets(rate=1.0, burst=2, client=redis, prefix=prefix)
    two = RedisBuckets(rate=1.0, burst=2, client=redis, prefix=prefix)  # another process
    try:
        assert await one.take("k") == 0.0
        assert await two.take("k") == 0.0
        wait = await one.take("k")
        assert 0.9 < wait <= 1.0
        assert await two.take("other") == 0.0
        assert 0 < await redis.pttl(prefix + "k") <= 3000  # buckets expire once refilled
    finally:
        await redis.delete(prefix + "k", prefix + "other")


async def test_redis_failure_falls_back_to_memory() -> None:
    clock = FakeClock()
    errors: list[int] = []
    down = redis_client("redis://127.0.0.1:1/0", timeout=0.2)  # nothing listens on port 1
    limiter = RateLimiter(
        MemoryBuckets(rate=1.0, burst=1, clock=clock),
        RedisBuckets(rate=1.0, burst=1, client=down),
        on_error=lambda: errors.append(1),
    )
    try:
        assert await limiter.take("k") == 0.0
        assert await limiter.take("k") == pytest.approx(1.0)  # limited in process meanwhile
        assert errors == [1]  # Redis is not retried on every request
    finally:
        await down.aclose()  # type: ignore[attr-defined]
