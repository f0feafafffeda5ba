"""One in-memory index of a (collection, space): its faces, their owners and the person counts."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from facerec.storage.models import EmbeddingSpace, SearchHit, as_vector, best_per_person
from facerec.storage.protocols import FaceVector, VectorIndex
from facerec.storage.vector_index import ExactIndex, HnswIndex

ShardKey = tuple[str, str]
"""(collection, space)."""


@dataclass
class Shard:
    space: EmbeddingSpace
    index: VectorIndex
    owners: dict[str, str]  # face id → person id
    persons: Counter[str] = field(default_factory=Counter)  # person id → faces here
    # Faces changed while an HNSW graph is built from a copy of ``index`` (None: no build).
    pending: set[str] | None = None

    def __post_init__(self) -> None:
        if not self.persons:
            self.persons = Counter(self.owners.values())


def best_persons(shard: Shard, query: NDArray[np.float32], k: int) -> list[SearchHit]:
    """The ``k`` persons nearest ``query``, each by its nearest face."""
    vector = as_vector(query, shard.space.dim)
    fetch = max(4 * k, 16)
    while True:
        ids, distances = shard.index.search(vector, fetch)
        rows = ((shard.owners[f], f, float(d)) for f, d in zip(ids, distances, strict=True))
        hits = best_per_person(rows)
        if len(hits) >= k or len(ids) < fetch:
            return hits[:k]
        fetch *= 4


def exact_index(spec: EmbeddingSpace, size: int) -> ExactIndex:
    return ExactIndex(spec.dim, spec.metric, capacity=max(256, size))


def forget_faces(shard: Shard, face_ids: Sequence[str] | set[str]) -> None:
    """Drop faces no longer in the index from the owners and the person counts."""
    for face_id in face_ids:
        owner = shard.owners.pop(face_id, None)
        if owner is not None:
            shard.persons[owner] -= 1
            if shard.persons[owner] <= 0:
                del shard.persons[owner]


async def reconciled(shard: Shard, face_ids: set[str], present: dict[str, FaceVector]) -> int:
    """:func:`reconcile`, the rows mapped from a snapshot first copied into memory in a thread
    when a face goes (a removal detaches them; a million 512-D rows take a second to copy)."""
    index = shard.index
    if isinstance(index, HnswIndex) and any(f not in present and f in index for f in face_ids):
        await asyncio.to_thread(index.detach_rows)
    return reconcile(shard, face_ids, present)


def reconcile(shard: Shard, face_ids: set[str], present: dict[str, FaceVector]) -> int:
    """Make the index agree with the faces table for ``face_ids``; returns how many it removed."""
    if shard.pending is not None:
        shard.pending |= face_ids
    gone = [f for f in face_ids if f not in present and f in shard.index]
    if gone:
        shard.index.remove(gone)
        forget_faces(shard, gone)
    new = [present[f] for f in face_ids if f in present and f not in shard.index]
    if new:
        shard.index.add([v.face_id for v in new], np.stack([v.vector for v in new]))
        shard.owners.update((v.face_id, v.person_id) for v in new)
        shard.persons.update(v.person_id for v in new)
    return len(gone)
