"""What a batch of change-log rows does to the in-process indexes and their snapshots.

The registry (:mod:`facerec.storage.registry`) reads the batch and holds the lock; these steps
make the indexes agree with the faces table for every face the batch names, and delete every
snapshot that may still hold an erased face (loaded in this process or not). Snapshot files
are touched off the event loop: a removal reads the start of the file, on whatever disk
``index_dir`` is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from facerec.storage.protocols import Change, IndexSource
from facerec.storage.shards import Shard, ShardKey, reconciled
from facerec.storage.snapshots import SnapshotStore


def removed_collections(batch: Sequence[Change]) -> set[str]:
    return {c.collection for c in batch if c.op == "collection_remove" and c.collection}


async def forget_erased(snapshots: SnapshotStore, batch: Sequence[Change]) -> None:
    """Delete the snapshots of removed collections, and those written before a face removal of
    their (collection, space)."""
    for collection in removed_collections(batch):
        await asyncio.to_thread(snapshots.forget, collection)
    removals = {(c.collection, c.space): c.seq for c in batch if c.op == "face_remove"}
    for (owner, space), seq in removals.items():  # (the batch's last of each)
        if owner and space:
            await asyncio.to_thread(snapshots.forget, owner, space, before=seq)


def first_faces(batch: Sequence[Change], shards: dict[ShardKey, Shard]) -> list[ShardKey]:
    """The (collection, space) keys the batch adds a face to and that have no index yet."""
    found: list[ShardKey] = []
    for c in batch:
        key = (c.collection or "", c.space or "")
        if c.op == "face_add" and all(key) and key not in shards and key not in found:
            found.append(key)
    return found


async def reconcile_batch(
    shards: dict[ShardKey, Shard],
    batch: Sequence[Change],
    source: IndexSource,
    snapshots: SnapshotStore,
) -> list[ShardKey]:
    """Bring every index the batch touches in line with the faces table (one read of the
    vectors of every face it names); returns the keys touched. An index that lost a face
    loses its snapshot too."""
    touched: dict[ShardKey, set[str]] = {}
    for c in batch:
        if c.face_id and c.collection and c.space and (c.collection, c.space) in shards:
            touched.setdefault((c.collection, c.space), set()).add(c.face_id)
    if not touched:
        return []
    faces = set().union(*touched.values())
    present = {v.face_id: v for v in await source.face_vectors(faces)}
    for key, face_ids in touched.items():
        if await reconciled(shards[key], face_ids, present):
            await asyncio.to_thread(snapshots.forget, *key, before=batch[-1].seq)
    return list(touched)
