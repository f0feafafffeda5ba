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

Processes sharing an ``index_dir`` (the workers of one service) build each graph once: the one
that claims the build (:mod:`facerec.storage.build_claims`) writes its snapshot as soon as it is
swapped in, and the others, answering with what they have meanwhile, load it. Builds run on
daemon threads (:mod:`facerec.storage.build_threads`), so a shutdown never waits for one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from facerec.storage.build_claims import BuildClaims
from facerec.storage.build_threads import in_daemon_thread
from facerec.storage.graph_copies import (
    apply_changes,
    catch_up,
    copied_rows,
    differences,
    ready,
)
from facerec.storage.index_options import IndexOptions
from facerec.storage.models import EmbeddingSpace
from facerec.storage.protocols import IndexSource, VectorIndex
from facerec.storage.quantised_rows import graph_dtype
from facerec.storage.shards import Shard, ShardKey, exact_index, forget_faces
from facerec.storage.snapshot_replay import load_snapshot
from facerec.storage.snapshots import SnapshotStore
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
        expansion_search=options.search_ef(spec.metric),
        threads=options.build_threads,
        dtype=graph_dtype(options.dtype, spec.metric),
        rescore=options.rescore,
        graph_dim=options.graph_dim,
        huge_pages=options.huge_pages,
        ordered_build=options.ordered_build,
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
        snapshots: SnapshotStore | None = None,
        adopt: Callable[[ShardKey, Shard], Awaitable[bool]] | None = None,
        publish: Callable[[ShardKey], Awaitable[None]] | None = None,
    ) -> None:
        """``snapshots``: where graphs are loaded from and saved (None: nowhere, and no other
        process shares this one's graphs); ``adopt``: swap in the graph another process built
        for a shard (from its snapshot), False when there is none that fits; ``publish``:
        snapshot a shard's new graph at once."""
        self._source = source
        self._options = options
        self._shards = shards
        self._lock = lock
        self._snapshots = snapshots
        self._claims = BuildClaims(snapshots)
        self._adopt = adopt or _nothing_to_adopt
        self._publish = publish or _nothing_to_publish
        self._tasks: dict[ShardKey, asyncio.Task[None]] = {}
        self._rebuilds: set[ShardKey] = set()  # of _tasks: graphs being built again
        self._waiting: set[ShardKey] = set()  # of _tasks: waiting for another process's build

    async def load_or_build(
        self, collection: str, spec: EmbeddingSpace, *, pruned: int, seq: int, background: bool
    ) -> Shard:
        """One index: its snapshot brought up to ``seq`` when there is one that fits, else
        built from the faces table (:meth:`from_rows`)."""
        if self._snapshots is not None:
            shard = await load_snapshot(
                self._source,
                self._snapshots,
                collection,
                spec,
                pruned=pruned,
                seq=seq,
                max_replay=self._options.max_replay,
            )
            if shard is not None:
                return shard
        return await self.from_rows(collection, spec.name, spec, background=background)

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
            index: VectorIndex = await in_daemon_thread(
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
        return len(index) > self._options.hnsw_threshold and self.outgrown(
            len(index), index.built_faces
        )

    def outgrown(self, faces: int, built_faces: int) -> bool:
        """Whether a graph built with ``built_faces`` faces is due a rebuild at ``faces``."""
        growth = self._options.rebuild_growth
        return growth > 1 and faces >= growth * max(1, built_faces)

    def upgrade_later(self, key: ShardKey) -> None:
        """Build the HNSW graph of an exact index, or a grown graph again, in the background;
        the index answers until the new graph is swapped in."""
        shard = self._shards[key]
        if key in self._tasks:
            return
        index = shard.index
        if isinstance(index, ExactIndex):
            copied = ready(index.ids(), index.vectors())
        elif isinstance(index, HnswIndex):
            log.info(
                "HNSW index of %s/%s has %d faces, built with %d: building it again",
                *key,
                len(index),
                index.built_faces,
            )
            copied = copied_rows(index)  # (runs in the task)
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
        self._waiting.discard(key)

    async def wait(self, *, rebuilds: bool = True) -> None:
        """Wait for the graphs being built (never call it holding the lock: swaps take it);
        ``rebuilds=False``: only for first graphs built here, not for graphs being built again,
        whose predecessor answers (and can be saved) meanwhile, nor for another process's."""
        tasks = self._selected("all" if rebuilds else "first")
        await asyncio.gather(*tasks, return_exceptions=True)

    async def cancel(self, *, rebuilds_only: bool = False) -> None:
        """Stop the graphs being built (``rebuilds_only``: those being built again, and waits
        for another process's build). A build's thread runs on (as a daemon thread, it does
        not hold up the process's exit); its graph is dropped."""
        tasks = self._selected("droppable" if rebuilds_only else "all")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _selected(self, kinds: Literal["all", "first", "droppable"]) -> list[asyncio.Task[None]]:
        droppable = self._rebuilds | self._waiting
        return [
            task
            for key, task in self._tasks.items()
            if kinds == "all" or (key in droppable) == (kinds == "droppable")
        ]

    async def _upgrade(
        self,
        key: ShardKey,
        shard: Shard,
        copied: Coroutine[Any, Any, tuple[list[str], NDArray[np.float32]]],
    ) -> None:
        try:
            self._waiting.add(key)
            claim = await self._claims.claim(key, lambda: self._adopt(key, shard))
            self._waiting.discard(key)
            if claim is None:  # another process built it: its graph was swapped in
                return
            with claim:  # held until the snapshot is written, for the others to load
                if await self._build(key, shard, copied):
                    await self._publish(key)
        except Exception:  # (building, adopting or publishing) the next change tries again
            log.exception("HNSW build of %s/%s failed: the index stays as it is", *key)
            shard.pending = None
        finally:
            copied.close()  # (not awaited when another process's graph was taken)

    async def _build(
        self,
        key: ShardKey,
        shard: Shard,
        copied: Coroutine[Any, Any, tuple[list[str], NDArray[np.float32]]],
    ) -> bool:
        """Build the graph and swap it in; False when it was not (dropped, or the swap's read
        failed). A failed build raises, for :meth:`_upgrade` to log."""
        started = time.perf_counter()
        ids, vectors = await copied
        graph = await in_daemon_thread(self.hnsw_from, shard.space, ids, vectors)
        del ids, vectors
        await catch_up(self._source, graph, shard, threads=self._options.build_threads)
        async with self._lock:
            changed, shard.pending = shard.pending or set(), None
            if self._shards.get(key) is not shard:
                return False  # dropped meanwhile (collection removed, or a rebuild)
            # Faces changed during the build: make the graph agree with the index it replaces.
            gone, wanted = differences(graph, shard, changed)
            try:
                found = await self._source.face_vectors(wanted) if wanted else []
            except Exception:  # the next change tries again
                log.exception("HNSW swap of %s/%s failed: the index stays as it is", *key)
                return False
            apply_changes(graph, gone, found, threads=1)
            forget_faces(shard, wanted - {v.face_id for v in found})  # erased since: never added
            shard.index = graph
        log.info(
            "HNSW index of %s/%s swapped in: %d faces, built in %.2f s",
            *key,
            len(graph),
            time.perf_counter() - started,
        )
        return True


async def _nothing_to_adopt(key: ShardKey, shard: Shard) -> bool:
    return False


async def _nothing_to_publish(key: ShardKey) -> None:
    return None
