"""In-process vector search that follows the database through the change log.

One index per (collection, space), built lazily from the faces table: exact while small, HNSW
once it holds more than ``IndexOptions.hnsw_threshold`` faces.

Multi-process consistency: every gallery write appends change-log rows (seq, op, face, person,
collection, space) in its own transaction, and writers are serialised, so seqs become visible in
order. Before each search the registry reads ``MAX(seq)`` (one cheap query); when it is ahead of
the last seq applied here, the new rows are read and every face they name is reconciled with the
faces table (present → in the index, absent → out of it). A write acknowledged by any process is
therefore visible to the next search in every process. A process too far behind (or behind a
pruned log) drops its indexes and rebuilds them on demand.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from facerec.config import Settings
from facerec.errors import NotFoundError
from facerec.storage.models import EmbeddingSpace, SearchHit, as_vector
from facerec.storage.pgvector import best_per_person
from facerec.storage.protocols import Change, FaceVector, IndexSource, VectorIndex
from facerec.storage.snapshots import SnapshotStore
from facerec.storage.vector_index import ExactIndex, HnswIndex

log = logging.getLogger(__name__)

PersonsChanged = Callable[[set[str] | None], Awaitable[None]]
"""Called with the ids of persons changed by any process (None: unknown, purge all)."""


@dataclass(frozen=True)
class IndexOptions:
    # "memory": exact → HNSW in this process; "pgvector": HNSW inside PostgreSQL;
    # "auto": pgvector where the extension is installed, memory otherwise.
    backend: str = "auto"
    hnsw_threshold: int = 20_000  # faces in one (collection, space) before switching to HNSW
    index_dir: Path | None = None  # where HNSW snapshots are saved; None: never saved
    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 64
    build_threads: int = 2
    max_replay: int = 50_000  # further behind than this many changes: rebuild instead
    pgvector_ef_search: int = 100

    @classmethod
    def from_settings(cls, settings: Settings) -> IndexOptions:
        index = settings.index
        return cls(
            backend=index.backend,
            hnsw_threshold=index.hnsw_threshold,
            index_dir=index.index_dir,
        )


@dataclass
class _Shard:
    space: EmbeddingSpace
    index: VectorIndex
    owners: dict[str, str]  # face id → person id


class IndexRegistry:
    """:class:`~facerec.storage.protocols.FaceSearcher` over in-process indexes."""

    def __init__(
        self,
        source: IndexSource,
        options: IndexOptions | None = None,
        *,
        on_persons_changed: PersonsChanged | None = None,
    ) -> None:
        self._source = source
        self._options = options or IndexOptions()
        self._on_persons_changed = on_persons_changed
        self._shards: dict[tuple[str, str], _Shard] = {}
        self._seq = -1  # nothing applied yet: the first sync only records the position
        self._pruned = 0
        self._snapshots = SnapshotStore(self._options.index_dir)
        self._lock = asyncio.Lock()

    @property
    def applied_seq(self) -> int:
        return self._seq

    def loaded(self) -> dict[tuple[str, str], int]:
        """(collection, space) → faces, for the indexes in memory."""
        return {key: len(shard.index) for key, shard in self._shards.items()}

    async def search(
        self, collection: str, space: str, query: NDArray[np.float32], k: int = 1
    ) -> list[SearchHit]:
        await self.sync()
        if k <= 0:
            return []
        try:
            shard = await self._shard(collection, space)
        except NotFoundError:  # a space nobody enrolled into: nothing to find
            return []
        vector = as_vector(query, shard.space.dim)
        fetch = max(4 * k, 16)
        while True:
            ids, distances = shard.index.search(vector, fetch)
            rows = ((shard.owners[f], f, float(d)) for f, d in zip(ids, distances, strict=True))
            hits = best_per_person(rows)
            if len(hits) >= k or len(ids) < fetch:
                return hits[:k]
            fetch *= 4

    async def count(self, collection: str, space: str) -> int:
        await self.sync()
        try:
            return len((await self._shard(collection, space)).index)
        except NotFoundError:
            return 0

    async def sync(self) -> int:
        """Apply changes committed by any process since the last call; returns how many.

        Every face removal seen here also deletes the snapshot file of its index, loaded in
        this process or not: call it after an erasure (search does it anyway).
        """
        async with self._lock:
            return await self._sync_locked()

    async def _sync_locked(self) -> int:
        state = await self._source.log_state()
        self._pruned = state.pruned_through
        if state.last_seq == self._seq:
            return 0
        if self._seq < 0:
            self._snapshots.instance = await self._source.instance_id()
            self._seq = state.last_seq
            return 0
        behind = state.last_seq - self._seq
        if (
            state.last_seq < self._seq
            or self._seq < state.pruned_through
            or (behind > self._options.max_replay)
        ):
            log.info("vector indexes %d changes behind: rebuilding on demand", behind)
            self._drop(list(self._shards))
            self._snapshots.forget_all()  # skipped changes may have erased faces in any of them
            self._seq = state.last_seq
            await self._notify(None)
            return behind
        applied = 0
        while self._seq < state.last_seq:
            batch = await self._source.changes_since(self._seq, 5_000)
            if not batch:
                break
            await self._apply(batch)
            self._seq = batch[-1].seq
            applied += len(batch)
        return applied

    async def close(self) -> None:
        """Save snapshots (call on shutdown, before the engine is disposed)."""
        await self.save()

    async def save(self) -> int:
        """Snapshot every HNSW index to ``index_dir``; returns how many were written."""
        if self._options.index_dir is None:
            return 0
        async with self._lock:
            await self._sync_locked()  # never write out a face erased before this call
            saved = 0
            for (collection, space), shard in self._shards.items():
                if isinstance(shard.index, HnswIndex):
                    await asyncio.to_thread(
                        self._snapshots.write,
                        collection,
                        space,
                        shard.index,
                        self._seq,
                        shard.owners,
                    )
                    saved += 1
            return saved

    # ---- internals ---------------------------------------------------------------------------

    async def _apply(self, batch: Sequence[Change]) -> None:
        gone = {c.collection for c in batch if c.op == "collection_remove" and c.collection}
        self._drop([key for key in self._shards if key[0] in gone])
        # Erased faces leave no snapshot behind, loaded here or not.
        for collection in gone:
            self._snapshots.forget(collection)
        for key in {(c.collection, c.space) for c in batch if c.op == "face_remove"}:
            if key[0] and key[1]:
                self._snapshots.forget(key[0], key[1])
        touched: dict[tuple[str, str], set[str]] = {}
        for c in batch:
            if c.face_id and c.collection and c.space and (c.collection, c.space) in self._shards:
                touched.setdefault((c.collection, c.space), set()).add(c.face_id)
        if touched:
            faces = set().union(*touched.values())
            present = {v.face_id: v for v in await self._source.face_vectors(faces)}
            for key, face_ids in touched.items():
                if _reconcile(self._shards[key], face_ids, present):
                    self._snapshots.forget(*key)
                await self._maybe_upgrade(key)
        persons = {c.person_id for c in batch if c.person_id}
        if persons:
            await self._notify(persons)

    async def _shard(self, collection: str, space: str) -> _Shard:
        shard = self._shards.get((collection, space))
        if shard is not None:
            return shard
        async with self._lock:
            shard = self._shards.get((collection, space))
            if shard is None:
                shard = await self._build(collection, space)
                self._shards[(collection, space)] = shard
            return shard

    async def _build(self, collection: str, space: str) -> _Shard:
        spec = await self._source.get_space(space)
        snapshot = await self._load_snapshot(collection, spec)
        if snapshot is not None:
            return snapshot
        rows = await self._source.index_rows(collection, space)
        owners = dict(zip(rows.face_ids, rows.person_ids, strict=True))
        if len(rows.face_ids) > self._options.hnsw_threshold:
            index: VectorIndex = await asyncio.to_thread(
                self._hnsw_from, spec, rows.face_ids, rows.vectors
            )
        else:
            exact = ExactIndex(spec.dim, spec.metric, capacity=max(256, len(rows.face_ids)))
            exact.add(rows.face_ids, rows.vectors)
            index = exact
        log.info(
            "built %s index of %s/%s: %d faces", type(index).__name__, collection, space, len(index)
        )
        return _Shard(spec, index, owners)

    def _hnsw_from(
        self, spec: EmbeddingSpace, ids: Sequence[str], vectors: NDArray[np.float32]
    ) -> HnswIndex:
        options = self._options
        index = HnswIndex(
            spec.dim,
            spec.metric,
            connectivity=options.connectivity,
            expansion_add=options.expansion_add,
            expansion_search=options.expansion_search,
            threads=options.build_threads,
        )
        index.add(ids, vectors)
        index.threads = 1  # later adds are a few faces at a time
        return index

    async def _maybe_upgrade(self, key: tuple[str, str]) -> None:
        shard = self._shards[key]
        if isinstance(shard.index, ExactIndex) and len(shard.index) > self._options.hnsw_threshold:
            exact = shard.index
            shard.index = await asyncio.to_thread(
                self._hnsw_from, shard.space, exact.ids(), exact.vectors()
            )

    async def _load_snapshot(self, collection: str, spec: EmbeddingSpace) -> _Shard | None:
        snapshot = await asyncio.to_thread(
            self._snapshots.read, collection, spec, self._pruned, self._seq
        )
        if snapshot is None:
            return None
        # Bring the snapshot from its seq to ours; rebuild instead when that is too long.
        changes: list[Change] = []
        seq = snapshot.seq
        while seq < self._seq:
            batch = await self._source.changes_since(seq, 5_000)
            if not batch:
                break
            changes.extend(c for c in batch if c.seq <= self._seq)
            seq = batch[-1].seq
            if len(changes) > self._options.max_replay:
                self._snapshots.forget(collection, spec.name)
                return None
        if any(c.op == "collection_remove" and c.collection == collection for c in changes):
            self._snapshots.forget(collection, spec.name)
            return None
        shard = _Shard(spec, snapshot.index, snapshot.owners)
        mine = {
            c.face_id
            for c in changes
            if c.face_id and (c.collection, c.space) == (collection, spec.name)
        }
        present = {v.face_id: v for v in await self._source.face_vectors(mine)}
        if _reconcile(shard, mine, present):
            self._snapshots.forget(collection, spec.name)
        log.info(
            "loaded index snapshot of %s/%s: %d faces", collection, spec.name, len(shard.index)
        )
        return shard

    def _drop(self, keys: list[tuple[str, str]]) -> None:
        for key in keys:
            self._shards.pop(key, None)
            self._snapshots.forget(*key)

    async def _notify(self, persons: set[str] | None) -> None:
        if self._on_persons_changed is not None:
            try:
                await self._on_persons_changed(persons)
            except Exception:  # a cache purge failing must not break searching
                log.exception("on_persons_changed callback failed")


def _reconcile(shard: _Shard, face_ids: set[str], present: dict[str, FaceVector]) -> int:
    """Make the index agree with the faces table for ``face_ids``; returns how many it removed."""
    gone = [f for f in face_ids if f not in present and f in shard.index]
    if gone:
        shard.index.remove(gone)
        for face_id in gone:
            shard.owners.pop(face_id, None)
    new = [present[f] for f in face_ids if f in present and f not in shard.index]
    if new:
        shard.index.add([v.face_id for v in new], np.stack([v.vector for v in new]))
        shard.owners.update((v.face_id, v.person_id) for v in new)
    return len(gone)
