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
# Exact rows up to this size grow by a copy into one matrix twice as large; larger, by blocks.
GROW_BY_COPY_BYTES = 64 << 20


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

    ``data``, the first block, holds the rows a graph was built or loaded with; it may be a
    copy-on-write memory map of a snapshot (``np.memmap`` mode ``"c"``): writes then go to
    private pages of this process and never reach the file. A small matrix grows by copying
    into one twice its size; past :data:`GROW_BY_COPY_BYTES` it grows by further blocks
    instead, so no add copies a large gallery's rows (at 1M x 512-D, a 2 GB copy stalled the
    first enrollment after a restart 0.7 s). The first removal copies a mapped block into
    memory (dropping the map) before zeroing, so the snapshot file, which the registry deletes
    on that removal, is released rather than kept alive by the map.
    """

    def __init__(self, dim: int, metric: Metric, data: NDArray[np.float32] | None = None) -> None:
        self.dim = dim
        self.metric: Metric = metric
        self.data = np.zeros((256, dim), np.float32) if data is None else data
        self._more: list[NDArray[np.float32]] = []  # the blocks after ``data``
        self._starts: list[int] = []  # the first key of each

    @property
    def capacity(self) -> int:
        return len(self.data) + sum(len(block) for block in self._more)

    def put(self, keys: NDArray[np.uint64], matrix: NDArray[np.float32]) -> None:
        if keys.size == 0:
            return
        needed = int(keys.max()) + 1
        if needed > self.capacity:
            self._grow(needed)
        self._assign(keys.astype(np.intp), unit_rows(matrix) if self.metric == "cosine" else matrix)

    def detach(self) -> None:
        """Copy rows mapped from a snapshot into memory (a second for a million 512-D rows:
        the registry calls it in a thread before a removal). A search that took the map goes
        on reading it; nothing else writes meanwhile (the registry's lock)."""
        if isinstance(self.data, np.memmap):
            self.data = np.array(self.data)

    def scrub(self, keys: list[int]) -> None:
        # Detach from the snapshot first: the registry deletes that file on this removal, and
        # the kernel frees it only once nothing maps it any more.
        self.detach()
        self._assign(np.asarray(keys, np.intp), np.zeros(self.dim, np.float32))

    def rows(self, keys: NDArray[Any]) -> NDArray[np.float32]:
        """A copy of the rows of ``keys``, in order."""
        index = np.asarray(keys).astype(np.intp)
        if not self._more or not index.size or int(index.max()) < len(self.data):
            return np.asarray(self.data[index], np.float32)
        found = np.empty((len(index), self.dim), np.float32)
        for block, start, chosen in self._blocks_of(index):
            found[chosen] = block[index[chosen] - start]
        return found

    def parts(self, count: int) -> list[NDArray[np.float32]]:
        """Rows ``0 .. count - 1``, block by block (what a snapshot writes)."""
        found, start = [], 0
        for block in (self.data, *self._more):
            if start >= count:
                break
            found.append(block[: count - start])
            start += len(block)
        return found

    def _grow(self, needed: int) -> None:
        if not self._more and self.data.nbytes <= GROW_BY_COPY_BYTES:
            grown = np.zeros((max(needed, 2 * len(self.data)), self.dim), np.float32)
            grown[: len(self.data)] = self.data
            self.data = grown  # a memory map is left for the garbage collector to unmap
            return
        capacity = self.capacity  # (zeroed lazily by the kernel: untouched rows cost nothing)
        self._starts.append(capacity)
        self._more.append(np.zeros((max(needed - capacity, capacity // 2), self.dim), np.float32))

    def _assign(self, index: NDArray[np.intp], values: NDArray[np.float32]) -> None:
        """Rows ``index`` = ``values`` (one row each, or one row for all)."""
        if not index.size:
            return
        if not self._more or int(index.max()) < len(self.data):
            self.data[index] = values
            return
        for block, start, chosen in self._blocks_of(index):
            block[index[chosen] - start] = values[chosen] if values.ndim == 2 else values

    def _blocks_of(
        self, index: NDArray[np.intp]
    ) -> list[tuple[NDArray[np.float32], int, NDArray[np.bool_]]]:
        """(block, its first key, which of ``index`` fall in it), for the blocks ``index`` hits."""
        starts = np.asarray([0, *self._starts])
        which = np.searchsorted(starts, index, side="right") - 1
        blocks = (self.data, *self._more)
        return [(blocks[b], int(starts[b]), which == b) for b in np.unique(which).tolist()]

    def rerank(
        self, keys: NDArray[np.uint64], query: NDArray[np.float32], k: int
    ) -> tuple[NDArray[np.uint64], NDArray[np.float32]]:
        """The ``k`` nearest of ``keys`` by exact distance (L2, or 1 - cos), nearest first."""
        rows = self.rows(keys)
        if self.metric == "cosine":
            norm = float(np.linalg.norm(query))
            # einsum, not matmul: BLAS would wake its thread pool for this small product.
            distances = 1.0 - np.einsum("ij,j->i", rows, query / norm if norm > 0 else query)
        else:
            distances = np.linalg.norm(rows - query, axis=1)
        order = np.argsort(distances, kind="stable")[:k]
        return keys[order], distances[order].astype(np.float32)

    def nbytes(self) -> int:
        return int(self.data.nbytes) + sum(int(block.nbytes) for block in self._more)
