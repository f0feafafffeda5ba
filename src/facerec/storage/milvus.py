"""Vector search in Milvus (a server, a cluster, or milvus-lite), following the SQL change log.

SQL stays the source of truth; Milvus holds a copy of the vectors of every (collection, space),
one Milvus collection each (:mod:`facerec.storage.milvus_client`). Every process follows the
change log as :class:`~facerec.storage.registry.IndexRegistry` does: before a search it reads
the newest seq, and the faces named by new changes are reconciled with the faces table
(present → upserted, absent → deleted). Both are idempotent, so several replicas applying the
same changes agree. Where this deployment stands in the log is stored in Milvus (a small
``<prefix>__state`` collection), so a restart replays from there instead of re-inserting
everything, and a replica skips the writes another one has already made (Strong consistency
only: then a search sees every write acknowledged before it, by any client).

A replica that upserts a face while another erases it could bring the face back; so every
upsert is followed by a second read of the faces table, and a face gone meanwhile is deleted
again. Deletions are flushed and a compaction requested (docs/milvus.md says what a Milvus
server keeps until its compaction has run).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from facerec.errors import NotFoundError, StorageUnavailableError
from facerec.storage.change_feed import ChangeNotifier, PersonsChanged
from facerec.storage.index_options import IndexOptions
from facerec.storage.milvus_client import MAX_TOPK, MilvusGateway, ShardKey
from facerec.storage.milvus_sizes import SizeReader, sql_gallery_sizes
from facerec.storage.models import EmbeddingSpace, SearchHit, as_vector, best_per_person
from facerec.storage.protocols import Change, FaceVector, GallerySize, IndexSource
from facerec.storage.synced_search import SyncedSearch

__all__ = ["MilvusSearcher", "SizeReader", "sql_gallery_sizes"]

log = logging.getLogger(__name__)

SEQ, INSTANCE = "applied_seq", "instance_id"


class MilvusSearcher(SyncedSearch):
    """:class:`~facerec.storage.protocols.FaceSearcher` answered by Milvus."""

    backend = "milvus"  # what /ready and the models page report

    def __init__(
        self,
        source: IndexSource,
        gateway: MilvusGateway,
        sizes: SizeReader,
        options: IndexOptions | None = None,
        *,
        on_persons_changed: PersonsChanged | None = None,
        retry_start: bool = True,
    ) -> None:
        self._source = source
        self._gateway = gateway
        self._read_sizes = sizes
        self._options = options or IndexOptions()
        self._notifier = ChangeNotifier(on_persons_changed)
        self._retry_start = retry_start
        self._lock = asyncio.Lock()
        self._seq = -1
        self._started = False  # until _start has finished: the next sync or warm (re)starts
        self._instance = 0
        self._names: dict[ShardKey, str] = {}  # every key whose Milvus collection may exist
        self._sizes: dict[ShardKey, GallerySize] = {}
        self._spaces: dict[str, EmbeddingSpace] = {}
        # Strong consistency: what another replica wrote is visible, so its writes are skipped.
        self._trust_others = gateway.options.consistency == "Strong"

    @property
    def gateway(self) -> MilvusGateway:
        return self._gateway

    @property
    def applied_seq(self) -> int:
        return self._seq

    async def _search(
        self, collection: str, space: str, query: NDArray[np.float32], k: int
    ) -> list[SearchHit]:
        spec = await self._space(space)
        name = self._names.get((collection, space))
        if k <= 0 or spec is None or name is None:
            return []
        if not self._sizes.get((collection, space), GallerySize(0, 0)).faces:
            return []
        vector = as_vector(query, spec.dim)
        fetch = min(max(4 * k, 16), MAX_TOPK)
        while True:
            rows = await self._gateway.search(
                name, spec, vector, fetch, max(self._options.milvus.hnsw_ef, fetch)
            )
            hits = best_per_person(rows)
            if len(hits) >= k or len(rows) < fetch or fetch >= MAX_TOPK:
                return hits[:k]
            fetch = min(fetch * 4, MAX_TOPK)

    async def count(self, collection: str, space: str) -> int:
        return (await self.gallery_size(collection, space)).faces

    async def gallery_size(self, collection: str, space: str) -> GallerySize:
        await self.sync()
        return self._sizes.get((collection, space), GallerySize(0, 0))

    async def warm(self) -> int:
        """Catch up with the change log (rebuilding what Milvus lacks) before /ready; while
        Milvus cannot be reached, retries with backoff. Returns how many collections exist."""
        pause = 0.5
        while True:
            try:
                async with self._lock:
                    if not self._started:
                        await self._start()
                    else:
                        await self._sync_locked()
                return len(self._names)
            except StorageUnavailableError as exc:
                if not self._retry_start:
                    raise
                log.warning("Milvus unavailable at start-up (%s); retrying in %.1f s", exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 30.0)

    async def sync(self) -> int:
        """Apply changes committed by any process; deletions are flushed before it returns, so
        an erased face is unreachable from Milvus once an erasure's ``sync()`` is done."""
        async with self._lock:
            if not self._started:
                return await self._start()
            return await self._sync_locked()

    async def close(self) -> None:
        await self._gateway.close()

    # ---- internals ---------------------------------------------------------------------------

    async def _start(self) -> int:
        started = time.perf_counter()
        state = await self._source.log_state()
        self._instance = await self._source.instance_id()
        stored = await self._gateway.read_state()
        existing = await self._gateway.face_collections()
        self._names = {key: name for name, key in existing.items()}
        keys = await self._source.index_keys()
        for collection, space in keys:
            self._names[(collection, space)] = self._gateway.name(collection, space)
        at = stored.get(SEQ, -1)
        rebuild = (
            stored.get(INSTANCE) != self._instance
            or at < state.pruned_through
            or at > state.last_seq
            or state.last_seq - at > self._options.max_replay
        )
        if rebuild:
            await self._rebuild(keys, existing, state.last_seq)
            applied = state.last_seq
        else:
            self._seq = at
            applied = await self._sync_locked(notify=False)
        self._sizes = await self._read_sizes(None)
        log.info(
            "milvus index ready in %.2f s: %d collections, %d faces, at seq %d (%s)",
            time.perf_counter() - started,
            len(self._names),
            sum(s.faces for s in self._sizes.values()),
            self._seq,
            "rebuilt from the faces table" if rebuild else f"resumed from seq {at}",
        )
        self._started = True
        return applied

    async def _rebuild(
        self, keys: list[ShardKey], existing: dict[str, ShardKey], last_seq: int
    ) -> None:
        """Copy every (collection, space) from the faces table into fresh Milvus collections,
        drop the collections the database no longer has, then replay what changed meanwhile."""
        log.info("milvus index out of step with the database: rebuilding from the faces table")
        for name in existing:
            await self._gateway.drop(name)
        self._names = {}
        for collection, space in keys:
            spec = await self._space(space)
            if spec is None:
                continue
            rows = await self._source.index_rows(collection, space)
            name = await self._ensure(collection, spec)
            batch = [
                FaceVector(f, p, collection, space, rows.vectors[i])
                for i, (f, p) in enumerate(zip(rows.face_ids, rows.person_ids, strict=True))
            ]
            await self._gateway.upsert(name, batch)
        self._seq = last_seq
        await self._sync_locked(notify=False, trust=False)
        await self._gateway.write_state({SEQ: self._seq, INSTANCE: self._instance})

    async def _sync_locked(self, *, notify: bool = True, trust: bool | None = None) -> int:
        state = await self._source.log_state()
        if state.last_seq == self._seq:
            return 0
        if state.last_seq < self._seq or self._seq < state.pruned_through:
            self._started = False  # the database was replaced or the log pruned past us
            await self._notifier.unknown()
            return await self._start()
        skip = -1
        if trust if trust is not None else self._trust_others:
            skip = (await self._gateway.read_state()).get(SEQ, -1)
        applied = 0
        touched: set[ShardKey] = set()
        try:
            while self._seq < state.last_seq:
                batch = await self._source.changes_since(self._seq, 5_000)
                if not batch:
                    break
                touched |= await self._apply(batch, skip)
                self._seq = batch[-1].seq
                applied += len(batch)
                if notify:
                    await self._notifier.changed(batch)
            if self._seq > skip:
                await self._gateway.write_state({SEQ: self._seq, INSTANCE: self._instance})
        finally:  # also after a failure: the batches applied before it count
            if touched:
                self._sizes.update(await self._read_sizes(sorted(touched)))
        return applied

    async def _apply(self, batch: Sequence[Change], skip: int) -> set[ShardKey]:
        """Make Milvus agree with the faces table for every face the batch names; returns the
        keys whose sizes changed. Changes at or below ``skip`` were applied by another replica."""
        touched: set[ShardKey] = set()
        for change in batch:
            if change.op == "collection_remove" and change.collection:
                gone = [key for key in self._names if key[0] == change.collection]
                for key in gone:
                    if change.seq > skip:
                        await self._gateway.drop(self._names[key])
                    del self._names[key]
                    self._sizes.pop(key, None)
        wanted: dict[ShardKey, set[str]] = {}
        for c in batch:
            if c.face_id and c.collection and c.space:
                key = (c.collection, c.space)
                touched.add(key)
                if c.seq > skip:
                    wanted.setdefault(key, set()).add(c.face_id)
                elif c.op == "face_add":
                    self._names.setdefault(key, self._gateway.name(*key))
        if wanted:
            face_ids = set().union(*wanted.values())
            present = {v.face_id: v for v in await self._source.face_vectors(face_ids)}
            for key, ids in wanted.items():
                await self._reconcile(key, ids, present)
        return touched

    async def _reconcile(
        self, key: ShardKey, ids: set[str], present: dict[str, FaceVector]
    ) -> None:
        spec = await self._space(key[1])
        if spec is None:
            return
        mine = {f: present[f] for f in ids if f in present and present[f].space == key[1]}
        here = [v for f, v in sorted(mine.items()) if v.collection == key[0]]
        gone = sorted(f for f in ids if f not in mine or mine[f].collection != key[0])
        if here:
            await self._gateway.upsert(await self._ensure(key[0], spec), here)
            # Erased by another process since it was read: never leave it behind.
            still = {v.face_id for v in await self._source.face_vectors(f.face_id for f in here)}
            gone += [f.face_id for f in here if f.face_id not in still]
        if gone:  # also where another replica created the collection: the name is fixed
            await self._gateway.delete(self._names.get(key) or self._gateway.name(*key), gone)

    async def _ensure(self, collection: str, spec: EmbeddingSpace) -> str:
        name = await self._gateway.ensure_faces(
            collection, spec, m=self._options.milvus.hnsw_m, ef=self._options.expansion_add
        )
        self._names[(collection, spec.name)] = name
        return name

    async def _space(self, name: str) -> EmbeddingSpace | None:
        spec = self._spaces.get(name)
        if spec is None:
            try:
                spec = self._spaces[name] = await self._source.get_space(name)
            except NotFoundError:
                return None
        return spec
