"""HNSW index (usearch) with string ids, real deletion, optional quantised graph + exact re-rank.

``dtype="f32"``: the graph holds the vectors; its distances are exact. ``"f16"`` / ``"i8"``: the
graph holds rounded copies (2 or 1 bytes per value) and :class:`ExactRows` a float32 copy; a
search takes the graph's ``k × rescore`` nearest and re-ranks them exactly, so the distances
returned are exact and only a candidate the graph ranked below ``k × rescore`` can be missed.

Erasure: a removed vector is unreachable at once; its graph slot is overwritten
(:meth:`HnswIndex._scrub`) and its exact row zeroed, so it survives neither in memory nor in a
snapshot written later. Persistence is in :mod:`facerec.storage.hnsw_snapshot`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray

from facerec.errors import InvalidInputError
from facerec.storage.quantised_rows import (
    ExactRows,
    GraphDtype,
    KeyPool,
    checked_matrix,
    checked_query,
)
from facerec.values import Metric

_EMPTY_IDS: list[str] = []


class HnswIndex:
    """usearch HNSW with string ids; removal is real (``Index.remove``) and scrubbed."""

    _SCRUB_KEY_BASE = np.uint64(2**63)  # real keys stay below the faces held and never get here

    def __init__(
        self,
        dim: int,
        metric: Metric,
        *,
        connectivity: int = 16,
        expansion_add: int = 128,
        expansion_search: int = 64,
        threads: int = 1,
        dtype: GraphDtype = "f32",
        rescore: int = 4,
    ) -> None:
        from usearch.index import Index

        self.dim = dim
        self.metric: Metric = metric
        self.threads = threads
        self.dtype: GraphDtype = dtype
        self.rescore = max(1, rescore)
        self._index = Index(
            ndim=dim,
            metric="l2sq" if metric == "l2" else "cos",
            dtype=dtype,
            connectivity=connectivity,
            expansion_add=expansion_add,
            expansion_search=expansion_search,
        )
        self._exact = ExactRows(dim, metric) if dtype != "f32" else None
        self._keys: dict[str, int] = {}
        self._ids: dict[int, str] = {}
        self._pool = KeyPool()
        # Slots freed by removals and not reused yet (``Index.stats`` would count them, but
        # walks the whole graph: milliseconds per call at a million vectors).
        self._free = 0

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, face_id: object) -> bool:
        return face_id in self._keys

    @property
    def expansion_search(self) -> int:
        return int(self._index.expansion_search)

    @expansion_search.setter
    def expansion_search(self, value: int) -> None:
        self._index.expansion_search = value  # type: ignore[misc]  # has a setter

    @property
    def quantised(self) -> bool:
        return self._exact is not None

    def memory_bytes(self) -> int:
        """Graph plus exact rows (the rows of a memory-mapped snapshot count in full)."""
        exact = self._exact.nbytes() if self._exact is not None else 0
        return int(self._index.memory_usage) + exact

    def add(self, ids: Sequence[str], vectors: NDArray[np.float32]) -> None:
        matrix = checked_matrix(vectors, self.dim, len(ids))
        if len(set(ids)) != len(ids):
            raise InvalidInputError("duplicate ids in one add", code="duplicate_face_id")
        self.remove([face_id for face_id in ids if face_id in self._keys])
        if not len(ids):
            return
        keys = self._pool.take(len(ids))
        if self._exact is not None:
            self._exact.put(keys, matrix)
        self._index.add(keys, matrix, threads=self.threads)
        self._free = max(0, self._free - len(ids))  # usearch fills free slots first
        for face_id, key in zip(ids, keys.tolist(), strict=True):
            self._keys[face_id] = key
            self._ids[key] = face_id

    def remove(self, ids: Iterable[str]) -> int:
        keys = [self._keys.pop(face_id) for face_id in ids if face_id in self._keys]
        if not keys:
            return 0
        for key in keys:
            del self._ids[key]
        self._index.remove(np.asarray(keys, dtype=np.uint64))
        self._free += len(keys)
        self._scrub()
        if self._exact is not None:
            self._exact.scrub(keys)
        self._pool.give_back(keys)
        return len(keys)

    def _scrub(self) -> None:
        """Overwrite the vectors of removed nodes.

        usearch frees the slot of a removed key but keeps its bytes until a later add reuses it.
        Adding as many constant dummies as there are free slots makes every free slot hold the
        dummy instead; the dummies are removed again at once.
        """
        free = self._free
        if free <= 0:
            return
        keys = self._SCRUB_KEY_BASE + np.arange(free, dtype=np.uint64)
        filler = np.full((free, self.dim), 1.0 / np.sqrt(self.dim), np.float32)
        self._index.add(keys, filler, threads=1)
        self._index.remove(keys)

    def search(self, query: NDArray[np.float32], k: int) -> tuple[list[str], NDArray[np.float32]]:
        q = checked_query(query, self.dim)
        if not self._keys or k <= 0:
            return _EMPTY_IDS, np.empty(0, np.float32)
        k = min(k, len(self._keys))
        wanted = k if self._exact is None else min(k * self.rescore, len(self._keys))
        # threads=1: the default (0) hands even one query to a thread pool, +0.1 ms.
        matches = self._index.search(q, wanted, threads=1)
        keys = np.asarray(matches.keys, dtype=np.uint64)
        if self._exact is not None:
            keys, distances = self._exact.rerank(keys, q, k)
        else:
            distances = np.asarray(matches.distances, dtype=np.float32)
            if self.metric == "l2":
                distances = np.sqrt(np.maximum(distances, 0.0))
        return [self._ids[key] for key in keys.tolist()], distances

    # ---- persistence (see hnsw_snapshot) -------------------------------------------------------

    def save(self, path: Path, extra: dict[str, Any] | None = None) -> None:
        from facerec.storage.hnsw_snapshot import write_snapshot

        write_snapshot(self, path, extra or {})

    @classmethod
    def load(cls, path: Path, *, mmap: bool = False) -> Self:
        index, _ = cls.load_with_extra(path, mmap=mmap)
        return index

    @classmethod
    def load_with_extra(cls, path: Path, *, mmap: bool = False) -> tuple[Self, dict[str, Any]]:
        """``mmap``: map the exact rows of a quantised snapshot copy-on-write instead of reading
        them (a restart then reads only the graph); see :class:`ExactRows`."""
        from facerec.storage.hnsw_snapshot import read_snapshot

        return read_snapshot(cls, path, mmap=mmap)
