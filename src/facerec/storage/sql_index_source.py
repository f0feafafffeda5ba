"""The reads an in-process vector index needs: slices of vectors and the change log.

Embeddings sealed at rest (:mod:`facerec.storage.sealing`) are opened here, so the index gets
plain vectors; they live only in this process's memory (and HNSW snapshots under index_dir).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from facerec.errors import NotFoundError
from facerec.storage.log_probe import LogProbe
from facerec.storage.models import EmbeddingSpace
from facerec.storage.protocols import Change, FaceVector, IndexRows, LogState
from facerec.storage.schema import change_log, embedding_spaces, faces, gallery_state
from facerec.storage.sealing import EMBEDDING_COLUMN, Sealer, open_blob
from facerec.storage.sql_support import write_transaction

_BATCH = 10_000
_IN_CHUNK = 500


class SqlIndexSource:
    """:class:`~facerec.storage.protocols.IndexSource` over the gallery tables."""

    def __init__(self, engine: AsyncEngine, sealer: Sealer | None = None) -> None:
        self._engine = engine
        self._sealer = sealer
        self._spaces: dict[str, EmbeddingSpace] = {}
        self._probe = LogProbe(engine)

    async def close(self) -> None:
        """Release the change-log probe's connection (the engine is disposed by its owner)."""
        await self._probe.close()

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def log_state(self) -> LogState:
        """The newest seq and how far the log has been pruned: one cheap read per search."""
        fast = await self._probe.read()
        if fast is not None:
            return LogState(last_seq=fast[0], pruned_through=fast[1])
        pruned = (
            select(gallery_state.c.value)
            .where(gallery_state.c.key == "pruned_through")
            .scalar_subquery()
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(func.max(change_log.c.seq), pruned))).one()
        return LogState(last_seq=int(row[0] or 0), pruned_through=int(row[1] or 0))

    async def instance_id(self) -> int:
        query = select(gallery_state.c.value).where(gallery_state.c.key == "instance_id")
        async with self._engine.connect() as conn:
            return int((await conn.execute(query)).scalar() or 0)

    async def changes_since(self, seq: int, limit: int) -> list[Change]:
        query = (
            select(
                change_log.c.seq,
                change_log.c.op,
                change_log.c.person_id,
                change_log.c.face_id,
                change_log.c.collection,
                change_log.c.space,
            )
            .where(change_log.c.seq > seq)
            .order_by(change_log.c.seq)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [Change(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]

    async def index_rows(self, collection: str, space: str) -> IndexRows:
        dim = (await self.get_space(space)).dim
        query = select(faces.c.id, faces.c.person_id, faces.c.embedding).where(
            faces.c.collection == collection, faces.c.space == space
        )
        face_ids: list[str] = []
        person_ids: list[str] = []
        chunks: list[np.ndarray] = []
        async with self._engine.connect() as conn:
            result = await conn.stream(query.execution_options(yield_per=_BATCH))
            async for partition in result.partitions(_BATCH):
                face_ids.extend(r[0] for r in partition)
                person_ids.extend(r[1] for r in partition)
                blob = b"".join(self._embedding(r[0], r[2]) for r in partition)
                chunks.append(np.frombuffer(blob, dtype="<f4").reshape(len(partition), dim))
        vectors = (
            np.concatenate(chunks).astype(np.float32, copy=False)
            if chunks
            else np.empty((0, dim), np.float32)
        )
        return IndexRows(face_ids, person_ids, vectors)

    async def face_vectors(self, face_ids: Iterable[str]) -> list[FaceVector]:
        wanted = list(dict.fromkeys(face_ids))
        found: list[FaceVector] = []
        async with self._engine.connect() as conn:
            for start in range(0, len(wanted), _IN_CHUNK):
                query = select(
                    faces.c.id,
                    faces.c.person_id,
                    faces.c.collection,
                    faces.c.space,
                    faces.c.embedding,
                ).where(faces.c.id.in_(wanted[start : start + _IN_CHUNK]))
                for r in await conn.execute(query):
                    blob = self._embedding(r[0], r[4])
                    vector = np.frombuffer(blob, dtype="<f4").astype(np.float32)
                    found.append(FaceVector(r[0], r[1], r[2], r[3], vector))
        return found

    def _embedding(self, face_id: str, stored: bytes) -> bytes:
        """The float32 bytes of a stored embedding (opened when sealed)."""
        return open_blob(self._sealer, stored, column=EMBEDDING_COLUMN, row_id=face_id)

    async def get_space(self, name: str) -> EmbeddingSpace:
        space = self._spaces.get(name)
        if space is not None:
            return space
        async with self._engine.connect() as conn:
            return await self._space_in(conn, name)

    async def _space_in(self, conn: AsyncConnection, name: str) -> EmbeddingSpace:
        space = self._spaces.get(name)
        if space is not None:
            return space
        query = select(embedding_spaces.c.dim, embedding_spaces.c.metric).where(
            embedding_spaces.c.name == name
        )
        row = (await conn.execute(query)).first()
        if row is None:
            raise NotFoundError(
                f"embedding space {name!r} is not registered",
                code="embedding_space_not_found",
                space=name,
            )
        space = self._spaces[name] = EmbeddingSpace(name, int(row[0]), row[1])
        return space

    async def prune_change_log(self, keep_last: int = 100_000) -> int:
        """Drop all but the newest ``keep_last`` rows; indexes older than that rebuild."""
        async with write_transaction(self._engine) as conn:
            newest = (await conn.execute(select(func.max(change_log.c.seq)))).scalar()
            cutoff = int(newest or 0) - keep_last
            if cutoff <= 0:
                return 0
            result = await conn.execute(delete(change_log).where(change_log.c.seq <= cutoff))
            await conn.execute(
                update(gallery_state)
                .where(gallery_state.c.key == "pruned_through", gallery_state.c.value < cutoff)
                .values(value=cutoff)
            )
            return int(result.rowcount)
