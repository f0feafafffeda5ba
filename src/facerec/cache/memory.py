"""In-process cache: LRU bounded by item count and by bytes, with per-entry TTL and tags."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# What one entry costs besides the characters of its key, value and tags, measured with
# tracemalloc (CPython 3.11, 64-bit) and rounded up: the _Entry object, the OrderedDict node, the
# bytes and str headers (~310 bytes); each tag's str, set and index slot (~300 bytes).
ENTRY_OVERHEAD = 384
TAG_OVERHEAD = 320


@dataclass(frozen=True)
class _Entry:
    value: bytes
    expires: float
    tags: tuple[str, ...]
    size: int


def entry_size(key: str, value: bytes, tags: tuple[str, ...]) -> int:
    """Bytes an entry is counted as against ``max_bytes``."""
    return ENTRY_OVERHEAD + len(key) + len(value) + sum(len(tag) + TAG_OVERHEAD for tag in tags)


class MemoryCache:
    """Per process: with several API processes each has its own (use Redis to share).

    Bounded twice: at most ``max_items`` entries and at most ``max_bytes`` counted bytes
    (:func:`entry_size`); the least recently used entries are evicted first, and a value that
    alone exceeds ``max_bytes`` is not stored. Expired entries at the LRU end are dropped on
    each write, so memory is given back even when nothing is read again.
    """

    def __init__(
        self,
        max_items: int = 10_000,
        default_ttl: float = 3600.0,
        *,
        max_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.default_ttl = default_ttl
        self.errors = 0  # a memory cache has no backend to fail; kept for the protocol
        self.evictions = 0  # entries dropped to stay within the bounds (not expiries)
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._tags: dict[str, set[str]] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Counted bytes of the entries held now."""
        return self._bytes

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry.value

    async def set(
        self, key: str, value: bytes, *, ttl: float | None = None, tags: Iterable[str] = ()
    ) -> None:
        self._remove(key)
        tag_tuple = tuple(tags)
        size = entry_size(key, value, tag_tuple)
        now = self._clock()
        self._drop_expired(now)
        if self.max_bytes is not None and size > self.max_bytes:
            self.evictions += 1
            return
        entry = _Entry(bytes(value), now + (ttl or self.default_ttl), tag_tuple, size)
        self._entries[key] = entry
        self._bytes += size
        for tag in entry.tags:
            self._tags.setdefault(tag, set()).add(key)
        while len(self._entries) > self.max_items or (
            self.max_bytes is not None and self._bytes > self.max_bytes
        ):
            self._remove(next(iter(self._entries)))
            self.evictions += 1

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._remove(key)

    async def delete_prefix(self, prefix: str) -> int:
        doomed = [key for key in self._entries if key.startswith(prefix)]
        for key in doomed:
            self._remove(key)
        return len(doomed)

    async def purge_tags(self, *tags: str) -> int:
        doomed = set().union(*(self._tags.get(tag, set()) for tag in tags)) if tags else set()
        for key in doomed:
            self._remove(key)
        return len(doomed)

    async def clear(self) -> None:
        self._entries.clear()
        self._tags.clear()
        self._bytes = 0

    async def close(self) -> None:
        await self.clear()

    def _drop_expired(self, now: float, limit: int = 8) -> None:
        """Expired entries at the least recently used end (a few per call: writes stay O(1))."""
        for _ in range(limit):
            oldest = next(iter(self._entries.items()), None)
            if oldest is None or oldest[1].expires > now:
                return
            self._remove(oldest[0])

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        self._bytes -= entry.size
        for tag in entry.tags:
            keys = self._tags.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tags[tag]
