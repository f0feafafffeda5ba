"""Load an index snapshot and bring it up to the registry's position in the change log: at
start-up (:func:`load_snapshot`), or to take the graph another process built
(:func:`built_elsewhere`, then :func:`take_over`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from facerec.storage.models import EmbeddingSpace
from facerec.storage.protocols import Change, IndexSource
from facerec.storage.shards import Shard, ShardKey, reconciled
from facerec.storage.snapshots import SnapshotStore

log = logging.getLogger(__name__)


async def load_snapshot(
    source: IndexSource,
    snapshots: SnapshotStore,
    collection: str,
    spec: EmbeddingSpace,
    *,
    pruned: int,
    seq: int,
    max_replay: int,
) -> Shard | None:
    """The snapshot of (collection, space) replayed up to ``seq``; None when there is none, or
    when replaying would take longer than rebuilding (the snapshot is then forgotten)."""
    snapshot = await asyncio.to_thread(snapshots.read, collection, spec, pruned, seq)
    if snapshot is None:
        return None
    shard = Shard(spec, snapshot.index, snapshot.owners)
    if not await replay(source, snapshots, shard, collection, snapshot.seq, seq, max_replay):
        return None
    log.info("loaded index snapshot of %s/%s: %d faces", collection, spec.name, len(shard.index))
    return shard


async def built_elsewhere(
    source: IndexSource,
    snapshots: SnapshotStore,
    collection: str,
    spec: EmbeddingSpace,
    *,
    pruned: int,
    fits: Callable[[int], bool],
) -> tuple[Shard, int] | None:
    """The snapshot another process wrote of (collection, space)'s graph, and its seq, when its
    graph was built with a number of faces that ``fits``; None when there is none that does.
    Its seq may be ahead of this process's: replay the log from there once caught up."""
    built = await asyncio.to_thread(snapshots.built_faces, collection, spec.name)
    if built is None or not fits(built):
        return None
    newest = (await source.log_state()).last_seq
    snapshot = await asyncio.to_thread(snapshots.read, collection, spec, pruned, newest)
    if snapshot is None:
        return None
    return Shard(spec, snapshot.index, snapshot.owners), snapshot.seq


async def take_over(
    source: IndexSource,
    snapshots: SnapshotStore,
    key: ShardKey,
    shard: Shard,
    loaded: Shard,
    at: int,
    seq: int,
    max_replay: int,
) -> bool:
    """Bring ``loaded`` (another process's graph of ``key``, from its snapshot of seq ``at``)
    up to ``seq`` and put it in ``shard``'s place; False (``shard`` as it was) when that would
    take longer than rebuilding. Call it holding the registry's lock, caught up to ``seq``."""
    if not await replay(source, snapshots, loaded, key[0], at, seq, max_replay):
        return False
    shard.index, shard.owners, shard.persons = loaded.index, loaded.owners, loaded.persons
    shard.pending = None  # (the build it waited for is done)
    log.info(
        "HNSW index of %s/%s loaded as another process built it: %d faces", *key, len(shard.index)
    )
    return True


async def replay(
    source: IndexSource,
    snapshots: SnapshotStore,
    shard: Shard,
    collection: str,
    since: int,
    until: int,
    max_replay: int,
) -> bool:
    """Apply the change log's rows ``since`` < seq <= ``until`` for (collection, shard's space)
    to ``shard``, loaded from a snapshot of seq ``since``; False (the snapshot forgotten) when
    that would take longer than rebuilding or the collection was removed meanwhile."""
    space = shard.space.name
    changes: list[Change] = []
    at = since
    while at < until:
        batch = await source.changes_since(at, 5_000)
        if not batch:
            break
        changes.extend(c for c in batch if c.seq <= until)
        at = batch[-1].seq
        if len(changes) > max_replay:
            snapshots.forget(collection, space)
            return False
    if any(c.op == "collection_remove" and c.collection == collection for c in changes):
        snapshots.forget(collection, space)
        return False
    mine = {
        c.face_id for c in changes if c.face_id and (c.collection, c.space) == (collection, space)
    }
    present = {v.face_id: v for v in await source.face_vectors(mine)}
    if await reconciled(shard, mine, present):
        snapshots.forget(collection, space)
    return True
