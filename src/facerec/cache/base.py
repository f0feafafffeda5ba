"""The cache protocol, key names, and the erasure purge.

Values are bytes (JSON helpers below). Every entry can carry tags; purging a tag deletes every
entry set with it. Keys and tags used by the service:

- person records: key ``person:{id}``, tag ``p:{id}``;
- image results (detections + embeddings of one image for one detector/embedder pair): key
  ``img:{sha256}:{detector}:{embedder}``, tag ``i:{sha256}``.

Erasing a person purges the person's tag and the tag of every image its faces came from
(``Face.image_sha256``), see :func:`purge_erasure`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Protocol

from facerec.values import Erasure


class Cache(Protocol):
    """Never raises on a backend failure: a read is a miss, a write is dropped (and counted)."""

    errors: int  # backend failures so far (facerec_cache_errors_total)

    async def get(self, key: str) -> bytes | None: ...
    async def set(
        self, key: str, value: bytes, *, ttl: float | None = None, tags: Iterable[str] = ()
    ) -> None: ...
    async def delete(self, *keys: str) -> None: ...
    async def delete_prefix(self, prefix: str) -> int: ...
    async def purge_tags(self, *tags: str) -> int: ...
    async def close(self) -> None: ...


def person_key(person_id: str) -> str:
    return f"person:{person_id}"


def person_tag(person_id: str) -> str:
    return f"p:{person_id}"


def image_result_key(image_sha256: str, detector: str, embedder: str) -> str:
    return f"img:{image_sha256}:{detector}:{embedder}"


def image_tag(image_sha256: str) -> str:
    return f"i:{image_sha256}"


async def get_json(cache: Cache, key: str) -> Any | None:
    raw = await cache.get(key)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        await cache.delete(key)
        return None


async def set_json(
    cache: Cache, key: str, value: Any, *, ttl: float | None = None, tags: Iterable[str] = ()
) -> None:
    raw = json.dumps(value, separators=(",", ":"), default=str).encode()
    await cache.set(key, raw, ttl=ttl, tags=tags)


async def purge_erasure(cache: Cache, erasure: Erasure) -> int:
    """Purge everything cached about erased (or changed) persons and their faces' images."""
    persons = (*erasure.person_ids, *erasure.updated_person_ids)
    tags = [person_tag(p) for p in persons] + [image_tag(s) for s in erasure.image_sha256s]
    if persons:
        await cache.delete(*(person_key(p) for p in persons))
    return await cache.purge_tags(*tags) if tags else 0
