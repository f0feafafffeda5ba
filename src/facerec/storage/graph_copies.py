"""A build's copy of an index's faces, and what changed in the index while the graph was built.

Both serve :mod:`facerec.storage.index_builds`: the copy is what a graph is built from, taken a
few rows at a time with the event loop free in between; the differences are applied to the new
graph (in rounds off the registry's lock, the last few at the swap) before it replaces the
index.
"""

from __future__ import annotations

import asyncio

import numpy as np
from numpy.typing import NDArray

from facerec.storage.build_threads import in_daemon_thread
from facerec.storage.protocols import FaceVector, IndexSource
from facerec.storage.shards import Shard
from facerec.storage.vector_index import HnswIndex

COPY_ROWS = 16_384  # faces copied per step of a rebuild's copy (32 MB at 512-D)
# Faces changed during a build are applied to the new graph off the lock, in up to
# CATCH_UP_ROUNDS rounds, until at most CATCH_UP_BELOW are left for the swap to apply under it.
CATCH_UP_BELOW = 256
CATCH_UP_ROUNDS = 8


async def catch_up(source: IndexSource, graph: HnswIndex, shard: Shard, *, threads: int) -> None:
    """Apply the faces changed during the build to ``graph`` in rounds, off the registry's
    lock and off the event loop, while more than :data:`CATCH_UP_BELOW` wait (a bulk
    enrollment during a rebuild): the swap, under the lock, then applies only the last few.
    The graph is still private to this build, so the rounds run on daemon threads, like the
    build: an exit does not wait for them."""
    for _ in range(CATCH_UP_ROUNDS):
        if shard.pending is None or len(shard.pending) <= CATCH_UP_BELOW:
            return
        changed, shard.pending = shard.pending, set()
        gone, wanted = differences(graph, shard, changed)
        found = await source.face_vectors(wanted) if wanted else []
        # Erased since the registry saw it: left for the swap to settle, under the lock.
        shard.pending |= wanted - {v.face_id for v in found}
        await in_daemon_thread(apply_changes, graph, gone, found, threads=threads)


def differences(graph: HnswIndex, shard: Shard, changed: set[str]) -> tuple[list[str], set[str]]:
    """Of the faces ``changed`` since ``graph``'s copy was taken: those it holds that the
    shard's index no longer does, and those the index holds that it does not."""
    gone = [f for f in changed if f not in shard.index and f in graph]
    return gone, {f for f in changed if f in shard.index and f not in graph}


def apply_changes(
    graph: HnswIndex, gone: list[str], found: list[FaceVector], *, threads: int
) -> None:
    if gone:
        graph.remove(gone)
    if found:
        graph.threads = threads
        try:
            graph.add([v.face_id for v in found], np.stack([v.vector for v in found]))
        finally:
            graph.threads = 1


async def ready(
    ids: list[str], vectors: NDArray[np.float32]
) -> tuple[list[str], NDArray[np.float32]]:
    return ids, vectors


async def copied_rows(index: HnswIndex) -> tuple[list[str], NDArray[np.float32]]:
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
