"""Faces an HNSW graph cannot find, found at every add and kept findable (:class:`Orphans`).

HNSW's neighbour selection keeps one link into a tight group of near-identical vectors (burst
shots, video frames, one photo enrolled twice) and drops the others as redundant; inserts on
several threads lose more links. Some faces then have no path from the entry point: a search
does not return them even for their own vector. On synthetic galleries this was up to 0.07% of
100k faces (more when built on two threads than on one, more in tight groups) and 0.026% of 1M
(``bench/bench_reachability.py``), often a whole person's group of faces at once, who could
then never be identified (4 of 25,000 identities in two galleries).

So after every add, each new face is looked up by its own vector (:func:`unreachable`). Those
the graph does not return are *orphans*: their vectors are kept in a small matrix that every
search scores exactly and merges with the graph's candidates. Every face held is then found by
construction, at the cost of one batched self-search per add (11-19% of a build's time) and, per
query, ranking the orphans (263 at a million faces: +0.03 ms on a 0.3 ms search).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from facerec.storage.graph_search import graph_search_many
from facerec.storage.quantised_rows import unit_rows
from facerec.values import Metric

SCREEN_EXPANSION = 16  # a first, cheap pass over a large add; its misses are checked again
SCREEN_FROM = 1024  # adds of at least this many faces get the cheap pass first
RANKED_FROM = 64  # more orphans than this (or a sketch): ranked before exact distances
RANK_MARGIN = 8  # orphans beyond k given exact distances after ranking (as projection.MARGIN)


def unreachable(
    index: Any,
    keys: NDArray[np.uint64],
    graph_rows: NDArray[np.float32],
    count: int,
    threads: int,
    *,
    private: bool,
) -> NDArray[np.intp]:
    """The positions in ``keys`` of the faces that a search of ``index`` for their own
    ``graph_rows`` (``count`` nearest, at the index's ``expansion_search``) does not return.

    ``private``: no other thread searches ``index`` (a graph being built), so a large add is
    first screened at :data:`SCREEN_EXPANSION` (a third of the time) and only its misses are
    searched again at the index's own expansion; a shared index is never retuned under its
    readers."""
    suspects = np.arange(len(keys))
    if private and len(keys) >= SCREEN_FROM and index.expansion_search > SCREEN_EXPANSION:
        expansion = index.expansion_search
        index.expansion_search = SCREEN_EXPANSION
        try:
            suspects = _missed(index, keys, graph_rows, suspects, count, threads)
        finally:
            index.expansion_search = expansion
    return _missed(index, keys, graph_rows, suspects, count, threads)


def _missed(
    index: Any,
    keys: NDArray[np.uint64],
    graph_rows: NDArray[np.float32],
    rows: NDArray[np.intp],
    count: int,
    threads: int,
) -> NDArray[np.intp]:
    if not len(rows):
        return rows
    found, counts = graph_search_many(index, graph_rows[rows], count, threads)
    within = np.arange(found.shape[1]) < counts[:, None]
    hit = ((found == keys[rows][:, None]) & within).any(axis=1)
    return np.asarray(rows[~hit], np.intp)


def unlisted(orphan_keys: NDArray[np.uint64], keys: NDArray[np.uint64]) -> list[int]:
    """Positions in ``orphan_keys`` of the orphans not among the graph's ``keys`` already (an
    orphan the graph has come to link since would be found twice). A few dozen keys: a list
    beats ``np.isin`` on arrays this small."""
    listed = keys.tolist()
    return [i for i, key in enumerate(orphan_keys.tolist()) if key not in listed]


class Orphans:
    """Keys and vectors (unit rows for cosine) of the faces the graph cannot find, and for a
    projected graph their projected rows too (``sketch``: a search ranks the orphans there, an
    eighth of the bytes at 512 -> 64). A removed orphan's rows are zeroed before the matrices are
    compacted (erasure, as for the graph)."""

    def __init__(self, dim: int, metric: Metric) -> None:
        self.metric: Metric = metric
        self.keys = np.empty(0, np.uint64)
        self.rows = np.zeros((0, dim), np.float32)
        self.sketch: NDArray[np.float32] | None = None
        self._squares = np.zeros(0, np.float32)  # |ranked row|² (L2 ranking)

    def __len__(self) -> int:
        return len(self.keys)

    def nbytes(self) -> int:
        sketch = 0 if self.sketch is None else self.sketch.nbytes
        return int(self.rows.nbytes + self.keys.nbytes + sketch)

    def add(
        self,
        keys: NDArray[np.uint64],
        vectors: NDArray[np.float32],
        sketch: NDArray[np.float32] | None = None,
    ) -> None:
        """``sketch``: the rows the graph holds for them when it is projected (else None)."""
        if not len(keys):
            return
        rows = unit_rows(vectors) if self.metric == "cosine" else vectors
        if sketch is not None:
            held = self.sketch if self.sketch is not None else np.zeros((0, sketch.shape[1]))
            self.sketch = np.concatenate([held, sketch]).astype(np.float32)
        self.keys = np.concatenate([self.keys, keys.astype(np.uint64)])
        self.rows = np.concatenate([self.rows, np.asarray(rows, np.float32)])
        ranked = self.rows if self.sketch is None else self.sketch
        self._squares = np.einsum("ij,ij->i", ranked, ranked)

    def discard(self, keys: list[int]) -> None:
        if not len(self.keys) or not keys:
            return
        gone = np.isin(self.keys, np.asarray(keys, np.uint64))
        if gone.any():
            self.rows[gone] = 0.0
            self.keys, self.rows = self.keys[~gone], self.rows[~gone]
            if self.sketch is not None:
                self.sketch[gone] = 0.0
                self.sketch = self.sketch[~gone]
            self._squares = self._squares[~gone]

    def nearest(
        self, query: NDArray[np.float32], k: int, sketch_query: NDArray[np.float32] | None = None
    ) -> tuple[NDArray[np.uint64], NDArray[np.float32]]:
        """The ``k`` nearest orphans by exact distance (L2, or 1 - cos), nearest first: the
        orphans :meth:`contenders` keeps, given their exact distances."""
        near = self._contenders(query, k, sketch_query)
        rows = self.rows if near is None else self.rows[near]
        if self.metric == "cosine":
            norm = float(np.sqrt(np.dot(query, query)))
            similarity = np.einsum("ij,j->i", rows, query)
            distances = 1.0 - (similarity / norm if norm else similarity)
        else:
            offsets = rows - query
            distances = np.sqrt(np.einsum("ij,ij->i", offsets, offsets))
        order = np.argsort(distances, kind="stable")[:k]
        keys = self.keys if near is None else self.keys[near]
        return keys[order], distances[order].astype(np.float32)

    def contenders(
        self, query: NDArray[np.float32], k: int, sketch_query: NDArray[np.float32] | None = None
    ) -> NDArray[np.uint64]:
        """The keys of the orphans that can be among the ``k`` nearest, unordered, for a caller
        that re-ranks them exactly anyway (a quantised or projected graph's exact rows): every
        orphan, or the ``k +`` :data:`RANK_MARGIN` nearest after ranking."""
        near = self._contenders(query, k, sketch_query)
        return self.keys if near is None else self.keys[near]

    def _contenders(
        self, query: NDArray[np.float32], k: int, sketch_query: NDArray[np.float32] | None
    ) -> NDArray[np.intp] | None:
        """Positions of the orphans kept for exact distances (None: all of them).

        With a sketch (``sketch_query`` is the query as the graph sees it), or beyond
        :data:`RANKED_FROM` orphans, one matrix-vector product ranks them (for L2 by
        ``|r|² - 2 r·q``, which rounds near ties) and the :data:`RANK_MARGIN` more than ``k``
        nearest are kept. einsum, not matmul: BLAS would wake its thread pool for these small
        products."""
        keep = k + RANK_MARGIN
        ranked, q = (self.rows, query)
        if self.sketch is not None and sketch_query is not None:
            ranked, q = self.sketch, sketch_query
        if keep >= len(self.rows) or (ranked is self.rows and len(self.rows) <= RANKED_FROM):
            return None
        products = np.einsum("ij,j->i", ranked, q)
        rough = -products if self.metric == "cosine" else self._squares - 2.0 * products
        return np.asarray(np.argpartition(rough, keep - 1)[:keep], np.intp)
