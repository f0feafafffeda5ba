"""In-process vector indexes of one (collection, space), keyed by face id.

:class:`ExactIndex` (NumPy brute force) answers small galleries exactly; :class:`HnswIndex`
(usearch HNSW, in :mod:`facerec.storage.hnsw_index`; f32, or an f16 / i8 graph re-ranked
exactly) answers large ones in well under a millisecond. Both really delete: a removed vector is
unreachable at once, and its bytes are overwritten (see ``graph_search.scrub_free_slots``), so
an erased face survives neither in memory nor in a saved snapshot.

Distances: Euclidean for ``l2`` (not squared), ``1 - cos`` for ``cosine``, as
``FaceEmbedder.distance`` computes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

from facerec.storage.hnsw_index import HnswIndex
from facerec.storage.quantised_rows import GraphDtype, checked_matrix, checked_query, unit_rows
from facerec.values import Metric

_EMPTY_IDS: list[str] = []
__all__ = ["ExactIndex", "GraphDtype", "HnswIndex"]


class ExactIndex:
    """Brute force over a growable float32 matrix; rows of removed ids are zeroed."""

    def __init__(self, dim: int, metric: Metric, *, capacity: int = 256) -> None:
        self.dim = dim
        self.metric: Metric = metric
        self._data = np.zeros((max(capacity, 1), dim), np.float32)
        self._norms = np.zeros(max(capacity, 1), np.float32)  # squared norms (l2)
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, face_id: object) -> bool:
        return face_id in self._rows

    def ids(self) -> list[str]:
        return list(self._ids)

    def vectors(self) -> NDArray[np.float32]:
        """Stored rows in ``ids()`` order (unit length for cosine)."""
        return self._data[: len(self._ids)].copy()

    def add(self, ids: Sequence[str], vectors: NDArray[np.float32]) -> None:
        matrix = checked_matrix(vectors, self.dim, len(ids))
        if self.metric == "cosine":
            matrix = unit_rows(matrix)
        needed = len(self._ids) + len(ids)
        if needed > len(self._data):
            self._grow(needed)
        for face_id, row in zip(ids, matrix, strict=True):
            index = self._rows.get(face_id)
            if index is None:
                index = self._rows[face_id] = len(self._ids)
                self._ids.append(face_id)
            self._data[index] = row
            self._norms[index] = float(row @ row)

    def remove(self, ids: Iterable[str]) -> int:
        removed = 0
        for face_id in ids:
            index = self._rows.pop(face_id, None)
            if index is None:
                continue
            last = len(self._ids) - 1
            if index != last:  # move the last row into the hole
                moved = self._ids[last]
                self._ids[index] = moved
                self._rows[moved] = index
                self._data[index] = self._data[last]
                self._norms[index] = self._norms[last]
            self._ids.pop()
            self._data[last] = 0.0
            self._norms[last] = 0.0
            removed += 1
        return removed

    def search(self, query: NDArray[np.float32], k: int) -> tuple[list[str], NDArray[np.float32]]:
        count = len(self._ids)
        q = checked_query(query, self.dim)
        if count == 0 or k <= 0:
            return _EMPTY_IDS, np.empty(0, np.float32)
        data = self._data[:count]
        # einsum, not matmul: BLAS hands a matrix-vector product to its worker threads, and on a
        # machine busy with inference waking them costs milliseconds; einsum stays on this one.
        if self.metric == "cosine":
            norm = float(np.linalg.norm(q))
            scores = 1.0 - np.einsum("ij,j->i", data, q / norm if norm > 0 else q)
        else:  # |x|² - 2x·q (+ |q|², the same for every row)
            scores = self._norms[:count] - 2.0 * np.einsum("ij,j->i", data, q)
        k = min(k, count)
        top = np.argpartition(scores, k - 1)[:k] if k < count else np.arange(count)
        if self.metric == "cosine":
            distances = scores[top].astype(np.float32)
        else:  # recompute exactly: the expanded form loses precision for near duplicates
            distances = np.linalg.norm(data[top] - q, axis=1).astype(np.float32)
        order = np.argsort(distances, kind="stable")
        return [self._ids[i] for i in top[order]], distances[order]

    def _grow(self, needed: int) -> None:
        size = max(needed, 2 * len(self._data))
        data = np.zeros((size, self.dim), np.float32)
        norms = np.zeros(size, np.float32)
        data[: len(self._ids)] = self._data[: len(self._ids)]
        norms[: len(self._ids)] = self._norms[: len(self._ids)]
        self._data, self._norms = data, norms
