"""Building indexes from the faces table, and HNSW graphs in the background swapped in later.

An exact index above ``IndexOptions.hnsw_threshold`` keeps answering while its HNSW graph is
built from a copy of its vectors; faces changed meanwhile are recorded in ``Shard.pending`` and
applied to the graph, under the registry's lock, before it replaces the exact index.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from facerec.storage.index_options import IndexOptions
from facerec.storage.models import EmbeddingSpace
from facerec.storage.protocols import IndexSource, VectorIndex
from facerec.storage.quantised_rows import graph_dtype
from facerec.storage.shards import Shard, ShardKey, exact_index, forget_faces
from facerec.storage.vector_index import ExactIndex, HnswIndex

log = logging.getLogger(__name__)


def configured_hnsw(options: IndexOptions, spec: EmbeddingSpace) -> HnswIndex:
    """An empty HNSW graph for ``spec`` with the service's settings, built (on its first add)
    on ``options.build_threads`` threads."""
    return HnswIndex(
        spec.dim,
        spec.metric,
        connectivity=options.connectivity,
        expansion_add=options.expansion_add,
        expansion_search=options.expansion_search,
        threads=options.build_threads,
        dtype=graph_dtype(options.dtype, spec.metric),
        rescore=options.rescore,
        graph_dim=options.graph_dim,
        huge_pages=options.huge_pages,
    )


class IndexBuilds:
    """Builds the indexes of ``shards`` (shared with the registry, guarded by ``lock``)."""

    def __init__(
        self,
        source: IndexSource,
        options: IndexOptions,
        shards: dict[ShardKey, Shard],
        lock: asyncio.Lock,
        *,
        on_swapped: Callable[[], None],
    ) -> None:
        self._source = source
        self._options = options
        self._shards = shards
        self._lock = lock
        self._on_swapped = on_swapped
        self._tasks: dict[ShardKey, asyncio.Task[None]] = {}

    async def from_rows(
        self, collection: str, space: str, spec: EmbeddingSpace, *, background: bool
    ) -> Shard:
        """Build one index from the faces table; above the threshold with ``background``, an
        exact index marked for an HNSW build (``pending`` set) instead of the graph itself."""
        started = time.perf_counter()
        rows = await self._source.index_rows(collection, space)
        owners = dict(zip(rows.face_ids, rows.person_ids, strict=True))
        large = len(rows.face_ids) > self._options.hnsw_threshold
        if large and not background:
            index: VectorIndex = await asyncio.to_thread(
                self.hnsw_from, spec, rows.face_ids, rows.vectors
            )
        else:
            exact = exact_index(spec, len(rows.face_ids))
            exact.add(rows.face_ids, rows.vectors)
            index = exact
        log.info(
            "built %s index of %s/%s: %d faces in %.2f s",
            type(index).__name__,
            collection,
            space,
            len(index),
            time.perf_counter() - started,
        )
        shard = Shard(spec, index, owners)
        if large and background:
            shard.pending = set()
        return shard

    def hnsw_from(
        self, spec: EmbeddingSpace, ids: Sequence[str], vectors: NDArray[np.float32]
    ) -> HnswIndex:
        index = configured_hnsw(self._options, spec)
        index.add(ids, vectors)
        index.threads = 1  # later adds are a few faces at a time
        return index

    def maybe_upgrade(self, key: ShardKey) -> None:
        shard = self._shards[key]
        if isinstance(shard.index, ExactIndex) and len(shard.index) > self._options.hnsw_threshold:
            self.upgrade_later(key)

    def upgrade_later(self, key: ShardKey) -> None:
        """Build the HNSW graph of an exact index in the background; exact search answers
        until it is swapped in."""
        shard = self._shards[key]
        if key in self._tasks or not isinstance(shard.index, ExactIndex):
            return
        exact = shard.index
        shard.pending = set()
        task = asyncio.create_task(self._upgrade(key, shard, exact.ids(), exact.vectors()))
        self._tasks[key] = task
        task.add_done_callback(lambda _: self._tasks.pop(key, None))

    async def wait(self) -> None:
        """Wait for the graphs being built (never call it holding the lock: swaps take it)."""
        await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def cancel(self) -> None:
        """Stop the graphs being built."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _upgrade(
        self, key: ShardKey, shard: Shard, ids: list[str], vectors: NDArray[np.float32]
    ) -> None:
        started = time.perf_counter()
        try:
            graph = await asyncio.to_thread(self.hnsw_from, shard.space, ids, vectors)
        except Exception:
            log.exception("HNSW build of %s/%s failed: staying exact", *key)
            shard.pending = None
            return
        async with self._lock:
            changed, shard.pending = shard.pending or set(), None
            if self._shards.get(key) is not shard:
                return  # dropped meanwhile (collection removed, or a rebuild)
            # Faces changed during the build: make the graph agree with the exact index.
            gone = [f for f in changed if f not in shard.index and f in graph]
            if gone:
                graph.remove(gone)
            wanted = {f for f in changed if f in shard.index and f not in graph}
            try:
                found = await self._source.face_vectors(wanted) if wanted else []
            except Exception:  # the next change past the threshold tries again
                log.exception("HNSW swap of %s/%s failed: staying exact", *key)
                return
            if found:
                graph.add([v.face_id for v in found], np.stack([v.vector for v in found]))
            forget_faces(shard, wanted - {v.face_id for v in found})  # erased since: never added
            shard.index = graph
            self._on_swapped()
        log.info(
            "HNSW index of %s/%s swapped in: %d faces, built in %.2f s",
            *key,
            len(graph),
            time.perf_counter() - started,
        )
