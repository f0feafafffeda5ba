"""The in-process cache is bounded by bytes as well as by items."""

from __future__ import annotations

import tracemalloc

import pytest

from facerec.cache.factory import MiB, create_cache, create_query_cache
from facerec.cache.memory import MemoryCache, entry_size
from facerec.config import Settings


def _size(key: str, value: bytes, *tags: str) -> int:
    return entry_size(key, value, tags)


async def test_over_the_byte_budget_evicts_least_recently_used() -> None:
    value = b"x" * 1000
    budget = 3 * _size("k0", value, "t")
    cache = MemoryCache(max_items=1000, max_bytes=budget)
    for n in range(3):
        await cache.set(f"k{n}", value, tags=["t"])
    assert len(cache) == 3 and cache.nbytes == budget
    assert await cache.get("k0") == value  # k0 is now the most recent; k1 the least
    await cache.set("k3", value, tags=["t"])
    assert await cache.get("k1") is None
    assert {k for k in ("k0", "k2", "k3") if k in cache._entries} == {"k0", "k2", "k3"}
    assert cache.nbytes <= budget and cache.evictions == 1
    assert await cache.purge_tags("t") == 3  # the tag index forgot the evicted key
    assert len(cache) == 0 and cache.nbytes == 0


async def test_a_large_value_evicts_several_small_ones() -> None:
    small = b"s" * 100
    cache = MemoryCache(max_items=1000, max_bytes=10 * _size("k00", small))
    for n in range(10):
        await cache.set(f"k{n:02d}", small)
    await cache.set("big", b"b" * 5 * len(small))
    assert await cache.get("big") is not None
    assert len(cache) < 10 and cache.nbytes <= cache.max_bytes  # type: ignore[operator]
    assert await cache.get("k00") is None and await cache.get("k09") == small


async def test_a_value_over_the_whole_budget_is_not_stored() -> None:
    cache = MemoryCache(max_items=10, max_bytes=4096)
    await cache.set("kept", b"k")
    await cache.set("huge", b"h" * 8192)
    assert await cache.get("huge") is None
    assert await cache.get("kept") == b"k"
    assert cache.nbytes == _size("kept", b"k")


async def test_rewrites_and_removals_keep_the_count_exact() -> None:
    cache = MemoryCache(max_items=100, max_bytes=1 * MiB)
    for n in range(50):
        await cache.set("same", b"v" * n, tags=["a", "b"])
    assert len(cache) == 1 and cache.nbytes == _size("same", b"v" * 49, "a", "b")
    await cache.set("other", b"o", tags=["a"])
    await cache.delete("same")
    assert cache.nbytes == _size("other", b"o", "a")
    assert await cache.delete_prefix("oth") == 1 and cache.nbytes == 0
    await cache.set("again", b"1")
    await cache.clear()
    assert cache.nbytes == 0 and len(cache) == 0


async def test_expired_entries_are_dropped_on_write() -> None:
    now = [0.0]
    cache = MemoryCache(max_items=100, default_ttl=10.0, max_bytes=1 * MiB, clock=lambda: now[0])
    for n in range(5):
        await cache.set(f"old{n}", b"x" * 1000)
    now[0] = 11.0
    await cache.set("new", b"y")  # never reading the old ones again still frees them
    assert len(cache) == 1 and cache.nbytes == _size("new", b"y")


async def test_item_bound_still_applies_without_a_byte_budget() -> None:
    cache = MemoryCache(max_items=2)
    for key in "abc":
        await cache.set(key, b"v")
    assert len(cache) == 2 and await cache.get("a") is None


@pytest.mark.parametrize("value_size", [10, 2500, 10_000])
@pytest.mark.parametrize("tagged", [True, False])
async def test_counted_bytes_do_not_underestimate_what_entries_hold(
    value_size: int, tagged: bool
) -> None:
    """The budget stands for real memory: what 2,000 entries allocate (tracemalloc: keys,
    values, tags and the cache's bookkeeping) is at most ~1.1x what they are counted as."""
    cache = MemoryCache(max_items=10_000, max_bytes=64 * MiB)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for n in range(2000):
        key = f"img:{n:064x}:retinaface:dlib_resnet+balanced"
        value = (key * (value_size // len(key) + 1))[:value_size].encode()
        await cache.set(key, value, tags=[f"i:{n:064x}"] if tagged else [])
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert held <= 1.1 * cache.nbytes, (held, cache.nbytes)


def test_budgets_come_from_the_cache_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEREC_CACHE__MEMORY_MAX_MB", "8")
    monkeypatch.setenv("FACEREC_CACHE__QUERY_MAX_MB", "3")
    settings = Settings()
    shared = create_cache(settings)
    queries = create_query_cache(settings)
    assert isinstance(shared, MemoryCache) and shared.max_bytes == 8 * MiB
    assert queries.max_bytes == 3 * MiB
    assert queries.max_items == settings.cache.query_max_items
