"""Caches behind one protocol: in-memory (LRU + TTL) and Redis; see :mod:`facerec.cache.base`."""

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

__all__ = [
    "Cache",
    "MemoryCache",
    "RedisCache",
    "create_cache",
    "get_json",
    "image_result_key",
    "image_tag",
    "person_key",
    "person_tag",
    "purge_erasure",
    "set_json",
]
