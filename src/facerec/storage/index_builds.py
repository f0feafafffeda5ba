"""Building indexes from the faces table, and HNSW graphs in the background swapped in later.

An exact index above ``IndexOptions.hnsw_threshold`` keeps answering while its HNSW graph is
built from a copy of its vectors; faces changed meanwhile are recorded in ``Shard.pending`` and
applied to the graph, under the registry's lock, before it replaces the exact index.

An HNSW graph that has grown to ``IndexOptions.rebuild_growth`` times the faces it was built
with is built again the same way, from a copy of its own vectors, while it keeps answering: a
graph built at the threshold and grown one add at a time keeps the projection and width chosen
for the gallery it started from (or none, when that gallery was too small to choose one), and
only a build checks every face for the orphan list. Doubling bounds the work: all the rebuilds
of a gallery together cost about one more build of its final size.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from facerec.storage.index_options import IndexOptions
from facerec.storage.models import EmbeddingSpace
from facerec.storage.protocols import FaceVector, IndexSource, VectorIndex
from facerec.storage.quantised_rows import graph_dtype
from facerec.storage.shards import Shard, ShardKey, exact_index, forget_faces
from facerec.storage.vector_index import ExactIndex, HnswIndex

log = logging.getLogger(__name__)

COPY_ROWS = 16_384  # faces copied per step of a rebuild's copy (32 MB at 512-D)
# Faces changed during a build are applied to the new graph off the lock, in up to
# CATCH_UP_ROUNDS rounds, until at most CATCH_UP_BELOW are left for the swap to apply under it.
CATCH_UP_BELOW = 256
CATCH_UP_ROUNDS = 8


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
        self._rebuilds: set[ShardKey] = set()  # of _tasks: graphs being built again

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
        """After changes to ``key``: build its graph (exact index past the threshold) or build it
        again (a graph grown to ``rebuild_growth`` times its build) in the background."""
        index = self._shards[key].index
        exact = isinstance(index, ExactIndex) and len(index) > self._options.hnsw_threshold
        if exact or (isinstance(index, HnswIndex) and self._outgrown(index)):
            self.upgrade_later(key)

    def _outgrown(self, index: HnswIndex) -> bool:
        growth = self._options.rebuild_growth
        return (
            growth > 1
            and len(index) > self._options.hnsw_threshold
            and len(index) >= growth * max(1, index.built_faces)
        )

    def upgrade_later(self, key: ShardKey) -> None:
        """Build the HNSW graph of an exact index, or a grown graph again, in the background;
        the index answers until the new graph is swapped in."""
        shard = self._shards[key]
        if key in self._tasks:
            return
        index = shard.index
        if isinstance(index, ExactIndex):
            copied = _ready(index.ids(), index.vectors())
        elif isinstance(index, HnswIndex):
            log.info(
                "HNSW index of %s/%s has %d faces, built with %d: building it again",
                *key,
                len(index),
                index.built_faces,
            )
            copied = _copied(index)  # (runs in the task)
            self._rebuilds.add(key)
        else:
            return
        shard.pending = set()  # from here on, a change is replayed onto the new graph
        task = asyncio.create_task(self._upgrade(key, shard, copied))
        self._tasks[key] = task
        task.add_done_callback(lambda _: self._done(key))

    def _done(self, key: ShardKey) -> None:
        self._tasks.pop(key, None)
        self._rebuilds.discard(key)

    async def wait(self, *, rebuilds: bool = True) -> None:
        """Wait for the graphs being built (never call it holding the lock: swaps take it);
        ``rebuilds=False``: only for first graphs, not for graphs being built again, whose
        predecessor answers (and can be saved) meanwhile."""
        tasks = self._selected("all" if rebuilds else "first")
        await asyncio.gather(*tasks, return_exceptions=True)

    async def cancel(self, *, rebuilds_only: bool = False) -> None:
        """Stop the graphs being built (``rebuilds_only``: those being built again). A build's
        thread runs on to its end; its graph is dropped."""
        tasks = self._selected("rebuilds" if rebuilds_only else "all")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _selected(self, kinds: Literal["all", "first", "rebuilds"]) -> list[asyncio.Task[None]]:
        return [
            task
            for key, task in self._tasks.items()
            if kinds == "all" or (key in self._rebuilds) == (kinds == "rebuilds")
        ]

    async def _catch_up(self, graph: HnswIndex, shard: Shard) -> None:
        """Apply the faces changed during the build to ``graph`` in rounds, off the registry's
        lock and off the event loop, while more than :data:`CATCH_UP_BELOW` wait (a bulk
        enrollment during a rebuild): the swap, under the lock, then applies only the last few.
        The graph is still private to this build."""
        for _ in range(CATCH_UP_ROUNDS):
            if shard.pending is None or len(shard.pending) <= CATCH_UP_BELOW:
                return
            changed, shard.pending = shard.pending, set()
            gone, wanted = _differences(graph, shard, changed)
            found = await self._source.face_vectors(wanted) if wanted else []
            # Erased since the registry saw it: left for the swap to settle, under the lock.
            shard.pending |= wanted - {v.face_id for v in found}
            threads = self._options.build_threads
            await asyncio.to_thread(_apply, graph, gone, found, threads=threads)

    async def _upgrade(
        self,
        key: ShardKey,
        shard: Shard,
        copied: Coroutine[Any, Any, tuple[list[str], NDArray[np.float32]]],
    ) -> None:
        started = time.perf_counter()
        try:
            ids, vectors = await copied
            graph = await asyncio.to_thread(self.hnsw_from, shard.space, ids, vectors)
            del ids, vectors
            await self._catch_up(graph, shard)
        except Exception:  # the next change tries again
            log.exception("HNSW build of %s/%s failed: the index stays as it is", *key)
            shard.pending = None
            return
        async with self._lock:
            changed, shard.pending = shard.pending or set(), None
            if self._shards.get(key) is not shard:
                return  # dropped meanwhile (collection removed, or a rebuild)
            # Faces changed during the build: make the graph agree with the index it replaces.
            gone, wanted = _differences(graph, shard, changed)
            try:
                found = await self._source.face_vectors(wanted) if wanted else []
            except Exception:  # the next change tries again
                log.exception("HNSW swap of %s/%s failed: the index stays as it is", *key)
                return
            _apply(graph, gone, found, threads=1)
            forget_faces(shard, wanted - {v.face_id for v in found})  # erased since: never added
            shard.index = graph
            self._on_swapped()
        log.info(
            "HNSW index of %s/%s swapped in: %d faces, built in %.2f s",
            *key,
            len(graph),
            time.perf_counter() - started,
        )


def _differences(graph: HnswIndex, shard: Shard, changed: set[str]) -> tuple[list[str], set[str]]:
    """Of the faces ``changed`` since ``graph``'s copy was taken: those it holds that the
    shard's index no longer does, and those the index holds that it does not."""
    gone = [f for f in changed if f not in shard.index and f in graph]
    return gone, {f for f in changed if f in shard.index and f not in graph}


def _apply(graph: HnswIndex, gone: list[str], found: list[FaceVector], *, threads: int) -> None:
    if gone:
        graph.remove(gone)
    if found:
        graph.threads = threads
        try:
            graph.add([v.face_id for v in found], np.stack([v.vector for v in found]))
        finally:
            graph.threads = 1


async def _ready(
    ids: list[str], vectors: NDArray[np.float32]
) -> tuple[list[str], NDArray[np.float32]]:
    return ids, vectors


async def _copied(index: HnswIndex) -> tuple[list[str], NDArray[np.float32]]:
    """A copy of the faces ``index`` holds, :data:`COPY_ROWS` at a time with the event loop
    free in between. A face removed before its turn is left out and one added meanwhile is not
    copied: both are in the shard's ``pending`` and put right at the swap."""
    ids = index.ids()
    kept: list[str] = []
    parts: list[NDArray[np.float32]] = []
    for start in range(0, len(ids), COPY_ROWS):
        part, rows = index.rows_of(ids[start : start + COPY_ROWS])
        kept.extend(part)
        parts.append(rows)
        await asyncio.sleep(0)
    return kept, (np.concatenate(parts) if parts else np.empty((0, index.dim), np.float32))
