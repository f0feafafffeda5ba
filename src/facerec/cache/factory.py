"""Build the configured caches: Redis when ``cache.redis_url`` is set, memory otherwise; and the
recent-results cache of query photos, always in this process and bounded by items and bytes."""

from __future__ import annotations

from collections.abc import Callable

from facerec.cache.base import Cache
from facerec.cache.memory import MemoryCache
from facerec.config import Settings

MiB = 1024 * 1024


def create_cache(settings: Settings, *, on_error: Callable[[str], None] | None = None) -> Cache:
    """``on_error(operation)`` is called on each Redis failure (a Prometheus counter's inc)."""
    if settings.cache.redis_url:
        from facerec.cache.redis_cache import RedisCache  # imported only where Redis is used

        return RedisCache(
            settings.cache.redis_url,
            default_ttl=float(settings.cache.ttl_seconds),
            on_error=on_error,
            pending_file=settings.cache.pending_purges_file,
        )
    return MemoryCache(
        settings.cache.memory_max_items,
        float(settings.cache.ttl_seconds),
        max_bytes=settings.cache.memory_max_mb * MiB,
    )


def create_query_cache(settings: Settings) -> MemoryCache:
    """Recent query results (probe detections and embeddings): never Redis, see
    :class:`facerec.domain.gallery_cache.PersonCache`."""
    return MemoryCache(
        settings.cache.query_max_items,
        float(settings.cache.query_ttl_seconds),
        max_bytes=settings.cache.query_max_mb * MiB,
    )
