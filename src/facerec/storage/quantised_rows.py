"""Input checks shared by the vector indexes, and the exact rows behind a quantised HNSW graph.

A graph stored in ``f16`` or ``i8`` walks faster (half or a quarter of the bytes per distance)
but ranks near ties approximately; :class:`ExactRows` keeps a float32 copy of every vector,
row = usearch key, so the top ``k × rescore`` candidates of the graph are re-ranked with exact
distances. Released rows are zeroed at once (erasure), and their keys handed out again.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from facerec.errors import InvalidInputError
from facerec.values import Metric

GraphDtype = Literal["f32", "f16", "i8"]
"""Scalar type of the vectors inside the HNSW graph (usearch ``dtype``)."""
DtypeSetting = Literal["auto", "f32", "f16", "i8"]


def graph_dtype(setting: DtypeSetting, metric: Metric) -> GraphDtype:
    """``auto``: i8 for cosine spaces, f32 for L2 ones. usearch scales every vector to unit
    length before rounding it to i8, so an i8 graph ranks by direction only: exact for cosine
    after re-ranking, but an L2 space whose norms vary would lose candidates."""
    if setting == "auto":
        return "i8" if metric == "cosine" else "f32"
    return setting


def checked_matrix(vectors: NDArray[Any], dim: int, count: int) -> NDArray[np.float32]:
    matrix = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.shape != (count, dim):
        raise InvalidInputError(
            f"expected {count} vectors of {dim} values, got shape {matrix.shape}",
            code="embedding_dim_mismatch",
        )
    return matrix


def checked_query(query: NDArray[Any], dim: int) -> NDArray[np.float32]:
    vector = np.ascontiguousarray(np.asarray(query, dtype=np.float32).reshape(-1))
    if vector.size != dim:
        raise InvalidInputError(
            f"query has {vector.size} values, the index has {dim}", code="embedding_dim_mismatch"
        )
    return vector


def unit_rows(matrix: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.asarray(matrix / np.where(norms > 0, norms, 1.0), dtype=np.float32)


class KeyPool:
    """usearch keys for face ids: freed keys are handed out again before new ones, so keys stay
    below the number of faces ever held at once (and index :class:`ExactRows` directly)."""

    def __init__(self, used: NDArray[np.uint64] | None = None) -> None:
        used = np.empty(0, np.uint64) if used is None else used
        self.high = int(used.max()) + 1 if used.size else 0
        unused = np.ones(self.high, bool)  # a mask, not setdiff1d: no sort of a million keys
        unused[used.astype(np.intp)] = False
        self._free: list[int] = np.flatnonzero(unused).tolist()

    def take(self, count: int) -> NDArray[np.uint64]:
        reused = [self._free.pop() for _ in range(min(count, len(self._free)))]
        fresh = np.arange(self.high, self.high + count - len(reused), dtype=np.uint64)
        self.high += len(fresh)
        return np.concatenate([np.asarray(reused, np.uint64), fresh])

    def give_back(self, keys: list[int]) -> None:
        self._free.extend(keys)


class ExactRows:
    """Growable float32 matrix, row = key; unit rows for cosine (so a dot product is 1 - d).

    ``data`` may be a copy-on-write memory map of a snapshot (``np.memmap`` mode ``"c"``): adds
    then go to private pages of this process and never reach the file. The first removal copies
    the rows into memory (dropping the map) before zeroing, so the snapshot file, which the
    registry deletes on that removal, is released rather than kept alive by the map.
    """

    def __init__(self, dim: int, metric: Metric, data: NDArray[np.float32] | None = None) -> None:
        self.dim = dim
        self.metric: Metric = metric
        self.data = np.zeros((256, dim), np.float32) if data is None else data

    def put(self, keys: NDArray[np.uint64], matrix: NDArray[np.float32]) -> None:
        if keys.size == 0:
            return
        needed = int(keys.max()) + 1
        if needed > len(self.data):
            grown = np.zeros((max(needed, 2 * len(self.data)), self.dim), np.float32)
            grown[: len(self.data)] = self.data
            self.data = grown  # a memory map is left for the garbage collector to unmap
        self.data[keys.astype(np.intp)] = unit_rows(matrix) if self.metric == "cosine" else matrix

    def scrub(self, keys: list[int]) -> None:
        if isinstance(self.data, np.memmap):
            # Detach from the snapshot first: the registry deletes that file on this removal,
            # and the kernel frees it only once nothing maps it any more.
            self.data = np.array(self.data)
        self.data[np.asarray(keys, np.intp)] = 0.0

    def rerank(
        self, keys: NDArray[np.uint64], query: NDArray[np.float32], k: int
    ) -> tuple[NDArray[np.uint64], NDArray[np.float32]]:
        """The ``k`` nearest of ``keys`` by exact distance (L2, or 1 - cos), nearest first."""
        rows = self.data[keys.astype(np.intp)]
        if self.metric == "cosine":
            norm = float(np.linalg.norm(query))
            # einsum, not matmul: BLAS would wake its thread pool for this small product.
            distances = 1.0 - np.einsum("ij,j->i", rows, query / norm if norm > 0 else query)
        else:
            distances = np.linalg.norm(rows - query, axis=1)
        order = np.argsort(distances, kind="stable")[:k]
        return keys[order], distances[order].astype(np.float32)

    def nbytes(self) -> int:
        return int(self.data.nbytes)
