"""In-process cache: LRU bounded by item count, with per-entry TTL and tags."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class _Entry:
    value: bytes
    expires: float
    tags: tuple[str, ...]


class MemoryCache:
    """Per process: with several API processes each has its own (use Redis to share)."""

    def __init__(
        self,
        max_items: int = 10_000,
        default_ttl: float = 3600.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_items = max_items
        self.default_ttl = default_ttl
        self.errors = 0  # a memory cache has no backend to fail; kept for the protocol
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._tags: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._entries)

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
        entry = _Entry(bytes(value), self._clock() + (ttl or self.default_ttl), tuple(tags))
        self._entries[key] = entry
        for tag in entry.tags:
            self._tags.setdefault(tag, set()).add(key)
        while len(self._entries) > self.max_items:
            self._remove(next(iter(self._entries)))

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

    async def close(self) -> None:
        await self.clear()

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for tag in entry.tags:
            keys = self._tags.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tags[tag]
