"""Persons and faces per (collection, space) for the ``milvus`` backend, read from SQL.

Milvus' own row counts include deleted rows until compaction and cannot count distinct
persons, so the searcher keeps these figures in memory: read for every key at start-up, then
only for the keys the change log touched (after a write, never per request).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from facerec.storage.protocols import GallerySize
from facerec.storage.schema import faces

ShardKey = tuple[str, str]
SizeReader = Callable[[Sequence[ShardKey] | None], Awaitable[dict[ShardKey, GallerySize]]]
"""Sizes of the given keys (every key with faces for None)."""


def sql_gallery_sizes(engine: AsyncEngine) -> SizeReader:
    """Persons and faces per (collection, space), read from the faces table: at start-up for
    every key, later only for the keys the change log touched (never per request)."""

    async def read(keys: Sequence[ShardKey] | None) -> dict[ShardKey, GallerySize]:
        query = select(
            faces.c.collection,
            faces.c.space,
            func.count(func.distinct(faces.c.person_id)),
            func.count(),
        ).group_by(faces.c.collection, faces.c.space)
        if keys is not None:
            if not keys:
                return {}
            query = query.where(
                or_(*(and_(faces.c.collection == c, faces.c.space == s) for c, s in keys))
            )
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        found = {(r[0], r[1]): GallerySize(int(r[2]), int(r[3])) for r in rows}
        return found if keys is None else {k: found.get(k, GallerySize(0, 0)) for k in keys}

    return read
