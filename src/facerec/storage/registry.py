"""In-process vector search that follows the database through the change log.

One index per (collection, space), built lazily from the faces table: exact while small, HNSW
once it holds more than ``IndexOptions.hnsw_threshold`` faces (an i8 graph re-ranked exactly for
cosine spaces, f32 for L2 ones by default: ``IndexOptions.dtype``, docs/index.md).

Multi-process consistency: every gallery write appends change-log rows (seq, op, face, person,
collection, space) in its own transaction, and writers are serialised, so seqs become visible in
order. Before each search the registry reads ``MAX(seq)`` (one cheap query); when it is ahead of
the last seq applied here, the new rows are read and every face they name is reconciled with the
faces table (present → in the index, absent → out of it). A write acknowledged by any process is
therefore visible to the next search in every process. A process too far behind (or behind a
pruned log) drops its indexes and rebuilds them on demand.

Start-up (:meth:`IndexRegistry.warm`, before the service says it is ready) loads or builds the
index of every (collection, space) that has faces, so no request builds one; from then on a
(collection, space) not in memory has no faces, and one that gets its first face is created
from the change log. An index above the HNSW threshold is answered exactly while its HNSW graph
is built in the background, then swapped in. Each index keeps its face and person counts as the
log is applied (:meth:`IndexRegistry.gallery_size`), so a request never counts rows. Snapshots
are written every ``snapshot_every_changes`` changes or ``snapshot_every_s`` seconds, on
shutdown and as soon as a graph is built, so a crash costs a replay of the log rather than a
rebuild, and processes sharing ``index_dir`` build each graph once (``index_builds``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from facerec.errors import NotFoundError
from facerec.storage import change_apply
from facerec.storage.change_feed import ChangeNotifier, PersonsChanged
from facerec.storage.index_builds import IndexBuilds
from facerec.storage.index_options import IndexOptions
from facerec.storage.models import EmbeddingSpace, SearchHit
from facerec.storage.protocols import Change, GallerySize, IndexSource
from facerec.storage.shards import Shard, ShardKey, best_persons, exact_index
from facerec.storage.snapshot_replay import built_elsewhere, take_over
from facerec.storage.snapshot_writer import SnapshotWriter
from facerec.storage.snapshots import SnapshotStore
from facerec.storage.synced_search import SyncedSearch
from facerec.storage.vector_index import HnswIndex

__all__ = ["IndexOptions", "IndexRegistry"]

log = logging.getLogger(__name__)


class IndexRegistry(SyncedSearch):
    """:class:`~facerec.storage.protocols.FaceSearcher` over in-process indexes."""

    backend = "memory"  # what /ready and the models page report

    def __init__(
        self,
        source: IndexSource,
        options: IndexOptions | None = None,
        *,
        on_persons_changed: PersonsChanged | None = None,
    ) -> None:
        self._source = source
        self._options = options or IndexOptions()
        self._notifier = ChangeNotifier(on_persons_changed)
        self._shards: dict[ShardKey, Shard] = {}
        self._seq = -1  # nothing applied yet: the first sync only records the position
        self._pruned = 0
        self._snapshots = SnapshotStore.configured(self._options)
        self._lock = asyncio.Lock()
        # After warm(): every (collection, space) with faces is in _shards.
        self._complete = False
        self._spaces: dict[str, EmbeddingSpace] = {}
        self._writer = SnapshotWriter(self._options, sync=self.sync, save=self.save)
        self._builds = IndexBuilds(
            source,
            self._options,
            self._shards,
            self._lock,
            snapshots=self._snapshots,
            adopt=self._adopt,
            publish=self._publish,
        )

    @property
    def applied_seq(self) -> int:
        return self._seq

    def loaded(self) -> dict[tuple[str, str], int]:
        """(collection, space) → faces, for the indexes in memory."""
        return {key: len(shard.index) for key, shard in self._shards.items()}

    async def _search(
        self, collection: str, space: str, query: NDArray[np.float32], k: int
    ) -> list[SearchHit]:
        if k <= 0:
            return []
        shard = await self._shard(collection, space)
        if shard is None:
            return []
        return best_persons(shard, query, k)

    async def count(self, collection: str, space: str) -> int:
        return (await self.gallery_size(collection, space)).faces

    async def gallery_size(self, collection: str, space: str) -> GallerySize:
        await self.sync()
        shard = await self._shard(collection, space)
        if shard is None:
            return GallerySize(0, 0)
        return GallerySize(len(shard.persons), len(shard.index))

    async def warm(self) -> int:
        """Load or build the index of every (collection, space) with faces; returns how many.

        Indexes above the HNSW threshold are built in the background (exact search answers
        meanwhile). Also starts the periodic snapshot writer when ``index_dir`` is set."""
        started = time.perf_counter()
        async with self._lock:
            await self._sync_locked()
            await asyncio.to_thread(self._snapshots.sweep_partial)
            for collection, space in await self._source.index_keys():
                if (collection, space) not in self._shards:
                    shard = await self._build(collection, space, background=True)
                    if shard is not None:
                        self._shards[(collection, space)] = shard
                        if shard.pending is not None:
                            self._builds.upgrade_later((collection, space))
            self._complete = True
        if self._options.index_dir is not None:
            self._writer.start()
        log.info(
            "vector indexes ready in %.2f s: %d (collection, space) shards, %d faces",
            time.perf_counter() - started,
            len(self._shards),
            sum(len(s.index) for s in self._shards.values()),
        )
        return len(self._shards)

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
            self._complete = False  # indexes are built again when first searched
            self._snapshots.forget_all()  # skipped changes may have erased faces in any of them
            self._seq = state.last_seq
            await self._notifier.unknown()
            return behind
        applied = 0
        while self._seq < state.last_seq:
            batch = await self._source.changes_since(self._seq, 5_000)
            if not batch:
                break
            await self._apply(batch)
            self._seq = batch[-1].seq
            applied += len(batch)
        self._writer.changed(applied)
        return applied

    async def close(self) -> None:
        """Stop the snapshot writer and save snapshots (on shutdown, before the engine is
        disposed)."""
        await self._writer.stop()
        # Without index_dir there is nothing to save: every build stops. With it, graphs being
        # built again stop (the graphs they would replace are saved; the next change after a
        # restart starts them again); first graphs are waited for and saved.
        await self._builds.cancel(rebuilds_only=self._options.index_dir is not None)
        await self.save()

    async def save(self) -> int:
        """Snapshot every HNSW index to ``index_dir``; returns how many were written."""
        if self._options.index_dir is None:
            return 0
        # First graphs being built are waited for (the swap takes the lock: never await it
        # inside); a graph being built again is not: the one it will replace is saved.
        await self._builds.wait(rebuilds=False)
        return await self._write(None)

    async def _publish(self, key: ShardKey) -> None:
        """Snapshot ``key``'s new graph at once: processes waiting for it load it rather than
        build their own, and a crash does not cost the build."""
        if self._options.index_dir is not None:
            await self._write(key)

    async def _write(self, only: ShardKey | None) -> int:
        """Snapshot the HNSW index of ``only``, or of every shard with None."""
        async with self._lock:
            await self._sync_locked()  # never write out a face erased before this call
            if only is None:
                self._writer.saved()
            saved = 0
            for key, shard in self._shards.items():
                if only in (None, key) and isinstance(shard.index, HnswIndex):
                    saved += await asyncio.to_thread(
                        self._snapshots.write, *key, shard.index, self._seq, shard.owners
                    )
            return saved

    async def _adopt(self, key: ShardKey, shard: Shard) -> bool:
        """Swap the graph another process built for ``key`` (its snapshot, brought up to this
        process's position in the log) into ``shard``; False when there is none that fits (none,
        or one built with too few faces for the gallery now)."""
        found = await built_elsewhere(
            self._source,
            self._snapshots,
            key[0],
            shard.space,
            pruned=self._pruned,
            fits=lambda built: not self._builds.outgrown(len(shard.index), built),
        )
        if found is None:
            return False
        async with self._lock:
            await self._sync_locked()  # (at least as far as the snapshot)
            if self._shards.get(key) is not shard:
                return True  # dropped meanwhile: nothing to build
            replay = self._options.max_replay
            return await take_over(
                self._source, self._snapshots, key, shard, *found, self._seq, replay
            )

    # ---- internals ---------------------------------------------------------------------------

    async def _apply(self, batch: Sequence[Change]) -> None:
        """Apply one batch of the log (:mod:`change_apply`): erased faces leave no snapshot
        behind, loaded here or not."""
        gone = change_apply.removed_collections(batch)
        self._drop([key for key in self._shards if key[0] in gone])
        await change_apply.forget_erased(self._snapshots, batch)
        if self._complete:  # the first face of a (collection, space): its index starts empty
            for key in change_apply.first_faces(batch, self._shards):
                spec = await self._space(key[1])
                if spec is not None:
                    self._shards[key] = Shard(spec, exact_index(spec, 0), {})
        changed = change_apply.reconcile_batch(self._shards, batch, self._source, self._snapshots)
        for key in await changed:
            self._builds.maybe_upgrade(key)
        await self._notifier.changed(batch)

    async def _shard(self, collection: str, space: str) -> Shard | None:
        """The index of (collection, space); None when it has no faces (or no such space)."""
        shard = self._shards.get((collection, space))
        if shard is not None or self._complete:
            return shard  # after warm() a missing index is an empty one: nothing to build
        async with self._lock:
            shard = self._shards.get((collection, space))
            if shard is None and not self._complete:
                shard = await self._build(collection, space, background=False)
                if shard is not None:
                    self._shards[(collection, space)] = shard
            return shard

    async def _space(self, name: str) -> EmbeddingSpace | None:
        spec = self._spaces.get(name)
        if spec is None:
            try:
                spec = self._spaces[name] = await self._source.get_space(name)
            except NotFoundError:  # a space nobody enrolled into
                return None
        return spec

    async def _build(self, collection: str, space: str, *, background: bool) -> Shard | None:
        """Load (snapshot) or build (faces table) one index; None for an unknown space."""
        spec = await self._space(space)
        if spec is None:
            return None
        return await self._builds.load_or_build(
            collection, spec, pruned=self._pruned, seq=self._seq, background=background
        )

    def _drop(self, keys: list[ShardKey]) -> None:
        for key in keys:
            self._shards.pop(key, None)
            self._snapshots.forget(*key)
