"""Caches behind one protocol: in-memory (LRU + TTL) and Redis; see :mod:`facerec.cache.base`.

:class:`~facerec.cache.redis_cache.RedisCache` is imported from its module, and only where Redis
is configured: the ``redis`` package costs every worker ~6 MiB.
"""

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

__all__ = [
    "Cache",
    "MemoryCache",
    "create_cache",
    "get_json",
    "image_result_key",
    "image_tag",
    "person_key",
    "person_tag",
    "purge_erasure",
    "set_json",
]
