"""Load an index snapshot and bring it up to the registry's position in the change log."""

from __future__ import annotations

import asyncio
import logging

from facerec.storage.models import EmbeddingSpace
from facerec.storage.protocols import Change, IndexSource
from facerec.storage.shards import Shard, reconcile
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
    # Bring the snapshot from its seq to ours; rebuild instead when that is too long.
    changes: list[Change] = []
    at = snapshot.seq
    while at < seq:
        batch = await source.changes_since(at, 5_000)
        if not batch:
            break
        changes.extend(c for c in batch if c.seq <= seq)
        at = batch[-1].seq
        if len(changes) > max_replay:
            snapshots.forget(collection, spec.name)
            return None
    if any(c.op == "collection_remove" and c.collection == collection for c in changes):
        snapshots.forget(collection, spec.name)
        return None
    shard = Shard(spec, snapshot.index, snapshot.owners)
    mine = {
        c.face_id
        for c in changes
        if c.face_id and (c.collection, c.space) == (collection, spec.name)
    }
    present = {v.face_id: v for v in await source.face_vectors(mine)}
    if reconcile(shard, mine, present):
        snapshots.forget(collection, spec.name)
    log.info("loaded index snapshot of %s/%s: %d faces", collection, spec.name, len(shard.index))
    return shard
