"""Cache contract (memory and real Redis), erasure purges, and Redis outages."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from facerec.cache.base import (
    Cache,
    get_json,
    image_result_key,
    image_tag,
    person_key,
    person_tag,
    purge_erasure,
    set_json,
)
from facerec.cache.factory import create_cache
from facerec.cache.memory import MemoryCache
from facerec.cache.redis_cache import RedisCache
from facerec.config import Settings
from facerec.values import Erasure
from tests.conftest import REDIS_URL, unavailable


async def _redis_cache(url: str = REDIS_URL, **kwargs: Any) -> RedisCache:
    cache = RedisCache(url, prefix=f"facerec-test-{uuid.uuid4().hex[:8]}:", **kwargs)
    if not await cache.ping():
        await cache.close()
        unavailable(f"Redis at {url}", "start redis-server or set FACEREC_TEST_REDIS_URL")
    return cache


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    if request.param == "memory":
        yield MemoryCache(max_items=100, default_ttl=60)
        return
    redis_cache = await _redis_cache()
    try:
        yield redis_cache
    finally:
        await redis_cache.delete_prefix("")  # only this test's prefix
        await redis_cache.close()


async def test_get_set_delete_ttl(cache: Cache) -> None:
    assert await cache.get("a") is None
    await cache.set("a", b"1")
    await cache.set("b", b"2", ttl=0.2)
    assert await cache.get("a") == b"1" and await cache.get("b") == b"2"
    await cache.delete("a", "missing")
    assert await cache.get("a") is None
    await asyncio.sleep(0.35)
    assert await cache.get("b") is None
    await set_json(cache, "j", {"x": [1, 2]})
    assert await get_json(cache, "j") == {"x": [1, 2]}
    assert cache.errors == 0


async def test_tags_and_prefix(cache: Cache) -> None:
    await cache.set("person:1", b"p1", tags=[person_tag("1")])
    await cache.set("person:2", b"p2", tags=[person_tag("2")])
    await cache.set("img:aa:det:emb", b"r", tags=[image_tag("aa"), person_tag("1")])
    assert await cache.purge_tags(person_tag("1")) == 2
    assert await cache.get("person:1") is None and await cache.get("img:aa:det:emb") is None
    assert await cache.get("person:2") == b"p2"
    assert await cache.purge_tags(person_tag("1")) == 0
    await cache.set("x:1", b"1")
    await cache.set("x:2", b"2")
    assert await cache.delete_prefix("x:") == 2
    assert await cache.get("person:2") == b"p2"


async def test_purge_erasure(cache: Cache) -> None:
    sha = "f" * 64
    await cache.set(person_key("p"), b"{}", tags=[person_tag("p")])
    await cache.set(image_result_key(sha, "retinaface", "dlib"), b"r", tags=[image_tag(sha)])
    await cache.set(image_result_key(sha, "retinaface", "other"), b"r", tags=[image_tag(sha)])
    await cache.set(person_key("q"), b"{}", tags=[person_tag("q")])
    await purge_erasure(cache, Erasure(person_ids=("p",), face_ids=("f",), image_sha256s=(sha,)))
    assert await cache.get(person_key("p")) is None
    assert await cache.get(image_result_key(sha, "retinaface", "dlib")) is None
    assert await cache.get(image_result_key(sha, "retinaface", "other")) is None
    assert await cache.get(person_key("q")) == b"{}"


async def test_memory_lru_bound() -> None:
    cache = MemoryCache(max_items=3)
    for key in "abc":
        await cache.set(key, key.encode(), tags=["t"])
    assert await cache.get("a") == b"a"  # a becomes most recent
    await cache.set("d", b"d", tags=["t"])
    assert len(cache) == 3 and await cache.get("b") is None
    assert await cache.purge_tags("t") == 3 and len(cache) == 0


def test_factory_picks_backend() -> None:
    assert isinstance(create_cache(Settings()), MemoryCache)
    redis_cache = create_cache(Settings(redis_url="redis://127.0.0.1:1/0"))
    assert isinstance(redis_cache, RedisCache)


async def test_redis_down_is_a_fast_miss() -> None:
    failures: list[str] = []
    cache = RedisCache("redis://127.0.0.1:1/0", retry_after=0.3, on_error=failures.append)
    started = time.monotonic()
    for i in range(50):
        assert await cache.get(f"k{i}") is None
        await cache.set(f"k{i}", b"v", tags=["t"])
        await cache.delete(f"k{i}")
        assert await cache.purge_tags("t") == 0
        assert await cache.delete_prefix("k") == 0
    assert time.monotonic() - started < 1.0
    assert cache.errors == 1 and failures == ["get"]  # the breaker answered the rest locally
    assert cache.short_circuited > 0 and not cache.available
    await asyncio.sleep(0.35)
    assert await cache.get("k") is None
    assert cache.errors == 2  # tried again after retry_after
    await cache.close()


async def test_redis_unresponsive_is_bounded() -> None:
    """A server that accepts and never answers costs one socket timeout, then nothing."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cache = RedisCache(f"redis://127.0.0.1:{port}/0", socket_timeout=0.2)
    try:
        started = time.monotonic()
        assert await cache.get("a") is None
        assert time.monotonic() - started < 1.5
        started = time.monotonic()
        for _ in range(20):
            assert await cache.get("a") is None
        assert time.monotonic() - started < 0.1
        assert cache.errors == 1
    finally:
        await cache.close()
        server.close()
        for writer in accepted:
            writer.close()


class _Proxy:
    """A TCP proxy to the real Redis that can be cut and restored on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            self._writers.append(up_writer)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._tasks.discard(task)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ConnectionError):
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    dst.close()


@pytest.mark.redis
async def test_redis_outage_and_recovery_replays_purges() -> None:
    real = await _redis_cache()  # skips/fails when Redis is not there
    from redis.asyncio.connection import parse_url

    target = parse_url(REDIS_URL)
    proxy = _Proxy(str(target.get("host", "127.0.0.1")), int(target.get("port", 6379)))
    await proxy.start()
    db = target.get("db", 0)
    cache = RedisCache(f"redis://127.0.0.1:{proxy.port}/{db}", prefix=real.prefix, retry_after=0.2)
    try:
        await cache.set(person_key("p"), b"x", tags=[person_tag("p")])
        assert await cache.get(person_key("p")) == b"x"
        await proxy.stop()
        # An erasure during the outage: no exception, remembered for later.
        await purge_erasure(cache, Erasure(person_ids=("p",)))
        assert cache.errors >= 1
        assert await real.get(person_key("p")) == b"x"  # still in Redis for now
        await proxy.start()  # Redis is back on the same address
        await asyncio.sleep(0.25)
        assert await cache.get("other") is None
        assert await real.get(person_key("p")) is None  # the purge was replayed
        await cache.set("k", b"v")
        assert await cache.get("k") == b"v"
    finally:
        await cache.close()
        await real.delete_prefix("")
        await real.close()
        await proxy.stop()


@pytest.mark.redis
async def test_purges_pending_during_an_outage_survive_a_restart(tmp_path: Path) -> None:
    """An erasure while Redis is unreachable is written to disk; a new process (a restart) with
    the same file replays it as soon as Redis answers, and the file goes away."""
    real = await _redis_cache()
    pending = tmp_path / "pending.json"
    await real.set(person_key("p"), b"x", tags=[person_tag("p")])
    dead = RedisCache(
        "redis://127.0.0.1:1/0", prefix=real.prefix, retry_after=0.1, pending_file=pending
    )
    try:
        await purge_erasure(dead, Erasure(person_ids=("p",)))
        assert pending.is_file() and (pending.stat().st_mode & 0o077) == 0
        assert "p:p" in pending.read_text()
    finally:
        await dead.close()
    assert await real.get(person_key("p")) == b"x"  # the outage kept it
    restarted = RedisCache(REDIS_URL, prefix=real.prefix, pending_file=pending)
    try:
        assert await restarted.get("anything") is None  # first call replays the backlog
        assert await real.get(person_key("p")) is None
        assert not pending.exists()
    finally:
        await restarted.close()
        await real.delete_prefix("")
        await real.close()
