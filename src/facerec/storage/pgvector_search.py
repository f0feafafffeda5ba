"""Searching pgvector's HNSW indexes in PostgreSQL (the tables and indexes: :mod:`.pgvector`)."""

from __future__ import annotations

import time

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from facerec.storage.change_feed import ChangeFeed, ChangeNotifier, ChangeSource, PersonsChanged
from facerec.storage.models import EmbeddingSpace, SearchHit, as_vector, best_per_person
from facerec.storage.pgvector import TABLE, search_sql, vector_literal
from facerec.storage.protocols import GallerySize
from facerec.storage.synced_search import SyncedSearch

__all__ = ["PgVectorSearcher"]


class PgVectorSearcher(SyncedSearch):
    """:class:`~facerec.storage.protocols.FaceSearcher` answered by pgvector's HNSW in PostgreSQL.

    Always consistent with the database (no in-process index), at the cost of a round trip.
    With a ``source``, every search first follows the change log (one prepared one-row read,
    :class:`~facerec.storage.log_probe.LogProbe`) and reports what any process changed to
    ``on_persons_changed``, so this process's copies (templates, recent results) are purged
    before it scores anyone (``applies_change_log``); without one nothing is reported.
    """

    backend = "pgvector"  # what /ready and the models page report

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        ef_search: int = 100,
        size_ttl_s: float = 2.0,
        source: ChangeSource | None = None,
        on_persons_changed: PersonsChanged | None = None,
    ) -> None:
        self._engine = engine
        self._feed = (
            None if source is None else ChangeFeed(source, ChangeNotifier(on_persons_changed))
        )
        self.applies_change_log = self._feed is not None
        self._ef_search = ef_search
        self._spaces: dict[str, EmbeddingSpace] = {}
        self._size_ttl_s = size_ttl_s
        self._sizes: dict[tuple[str, str], tuple[float, GallerySize]] = {}

    async def _space(self, conn: AsyncConnection, name: str) -> EmbeddingSpace | None:
        space = self._spaces.get(name)
        if space is None:
            row = (
                await conn.execute(
                    text("SELECT name, dim, metric FROM embedding_spaces WHERE name = :n"),
                    {"n": name},
                )
            ).first()
            if row is None:
                return None
            space = self._spaces[name] = EmbeddingSpace(row[0], int(row[1]), row[2])
        return space

    async def sync(self) -> int:
        """The index lives in the database (always current); the change log is followed only
        to report what other processes changed."""
        return 0 if self._feed is None else await self._feed.follow()

    async def close(self) -> None:
        return None

    async def warm(self) -> int:
        return 0  # PostgreSQL keeps its HNSW indexes

    async def gallery_size(self, collection: str, space: str) -> GallerySize:
        """Counted in SQL, remembered for ``size_ttl_s`` per (collection, space)."""
        now = time.monotonic()
        cached = self._sizes.get((collection, space))
        if cached is not None and now - cached[0] < self._size_ttl_s:
            return cached[1]
        sql = text(
            f"SELECT count(DISTINCT person_id), count(*) FROM {TABLE}"
            " WHERE collection = :c AND space = :s"
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(sql, {"c": collection, "s": space})).one()
        size = GallerySize(int(row[0]), int(row[1]))
        if len(self._sizes) > 10_000:
            self._sizes.clear()
        self._sizes[(collection, space)] = (now, size)
        return size

    async def count(self, collection: str, space: str) -> int:
        async with self._engine.connect() as conn:
            sql = text(f"SELECT count(*) FROM {TABLE} WHERE collection = :c AND space = :s")
            return int((await conn.execute(sql, {"c": collection, "s": space})).scalar_one())

    async def _search(
        self, collection: str, space: str, query: NDArray[np.float32], k: int
    ) -> list[SearchHit]:
        async with self._engine.begin() as conn:
            spec = await self._space(conn, space)
            if spec is None or k <= 0:
                return []
            vector = as_vector(query, spec.dim)
            fetch = max(4 * k, 16)
            ef = max(self._ef_search, fetch)
            # Custom plans let the planner match the partial index predicate to the parameters.
            await conn.execute(
                text(
                    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true),"
                    " set_config('hnsw.ef_search', :ef, true)"
                ),
                {"ef": str(ef)},
            )
            sql = text(search_sql(spec))
            while True:
                params = {"q": vector_literal(vector), "c": collection, "s": space, "k": fetch}
                rows = (await conn.execute(sql, params)).all()
                hits = best_per_person((r[1], r[0], float(r[2])) for r in rows)
                if len(hits) >= k or len(rows) < fetch or fetch >= 1000:
                    return hits[:k]
                fetch *= 4
                if fetch > ef:
                    ef = min(fetch, 1000)
                    await conn.execute(
                        text("SELECT set_config('hnsw.ef_search', :ef, true)"), {"ef": str(ef)}
                    )
