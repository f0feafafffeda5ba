"""A learned linear projection for the HNSW graph of a cosine space: fewer bytes per hop.

At a million 512-D faces an HNSW search is bound by memory, not arithmetic: every hop reads a
node's neighbours' vectors from RAM (512 bytes each even in i8). A graph over the vectors'
``graph_dim`` principal directions (PCA of the gallery itself, fitted when the graph is built)
reads a quarter of that per hop at 128-D, and face embeddings keep most of their energy there;
the graph's candidates are then re-ranked with the exact full-dimension rows, so the distances
returned stay exact and only a face the projection ranked below the candidates can be missed.

:func:`self_check` measures that on the gallery itself before the graph is kept: faces of the
gallery are searched as queries (their nearest other face is what an identification finds) and
compared with exact search; below :data:`MIN_RECALL` the caller builds the full-dimension graph
instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from facerec.storage.quantised_rows import unit_rows
from facerec.values import Metric

FIT_ROWS = 50_000  # rows the principal directions are fitted on (evenly spaced)
MIN_ROWS = 1_000  # fewer rows than this: no projection (the graph is small anyway)
CHECK_QUERIES = 200
MIN_RECALL = 0.995
MARGIN = 8  # graph candidates re-ranked exactly beyond the faces asked for, at least
WIDTHS = (0.5, 0.75, 1.0)  # shares of graph_dim tried, fewest directions first (narrowest)
FIDELITY_QUERIES = 500
MIN_FIDELITY = 1.0  # every sampled face keeps its nearest neighbour among the candidates
# A face this much cosine below the exact nearest still counts as found by both checks. The
# checks ask whether the projection keeps the gallery's neighbourhoods; the nearest other face
# of a sampled face is a proxy for what an identification looks for, which fails when that face
# is its person's only one: its nearest other is then a stranger among many at about the same
# similarity, and which of them comes first says nothing about identification. With exact
# ties only, a gallery of one face per person (spread, 200k) kept 0.74 in the self-check and got
# the full-width graph instead, which found 0.970 of new photos' faces at ef 64 in 0.90 ms
# where the 96-direction graph near ties allow found 0.998 in 0.37 ms (BENCHMARKS.md,
# projection_check).
# Structureless (random) vectors still fail both checks by far (0.22-0.57).
TIE = 0.05


def graph_dim_for(graph_dim: int, dim: int, metric: Metric) -> int:
    """The projected dimensions a graph of ``dim``-D ``metric`` vectors asks for: ``graph_dim``
    for a cosine space with more dimensions, else 0 (every dimension)."""
    return graph_dim if metric == "cosine" and 0 < graph_dim < dim else 0


def fit(rows: NDArray[np.float32], graph_dim: int) -> NDArray[np.float32] | None:
    """The (dim, graph_dim) matrix onto the top ``graph_dim`` principal directions of the unit
    rows (uncentred: cosine similarity is a dot product of unit vectors, which this keeps
    best); None when there are too few rows or ``graph_dim`` would not reduce anything."""
    count, dim = rows.shape
    if not 0 < graph_dim < dim or count < max(MIN_ROWS, 4 * graph_dim):
        return None
    step = max(1, count // FIT_ROWS)
    sample = unit_rows(np.ascontiguousarray(rows[::step][:FIT_ROWS], dtype=np.float32))
    # The Gram matrix is dim x dim: its eigenvectors are the right singular vectors of the
    # sample, at a fraction of a full SVD's cost and memory.
    gram = (sample.T @ sample).astype(np.float64)
    values, vectors = np.linalg.eigh(gram)
    top = np.argsort(values)[::-1][:graph_dim]
    return np.ascontiguousarray(vectors[:, top], dtype=np.float32)


def spaced(count: int, queries: int) -> NDArray[np.intp]:
    """``queries`` evenly spaced row numbers of ``count`` rows (all of them when fewer)."""
    return np.linspace(0, count - 1, min(queries, count)).astype(np.intp)


def nearest_other_similarity(
    rows: NDArray[np.float32], picks: NDArray[np.intp]
) -> NDArray[np.float32]:
    """For each picked unit row, its cosine similarity to the nearest other row (exact, every
    dimension, every row), computed a block of rows at a time."""
    unit_q = rows[picks]
    best = np.full(len(picks), -np.inf, np.float32)
    for start in range(0, len(rows), 65_536):
        sims = unit_q @ rows[start : start + 65_536].T
        own = (picks >= start) & (picks < start + sims.shape[1])
        sims[np.flatnonzero(own), picks[own] - start] = -np.inf  # not itself
        best = np.maximum(best, sims.max(1))
    return best


def narrowest(
    rows: NDArray[np.float32], matrix: NDArray[np.float32], queries: int = FIDELITY_QUERIES
) -> NDArray[np.float32]:
    """The fewest leading columns of ``matrix`` (its directions by decreasing energy; of
    :data:`WIDTHS` × its width) under which the gallery keeps its nearest neighbours: for at
    least :data:`MIN_FIDELITY` of ``queries`` evenly spaced unit ``rows``, the nearest other
    row (exact, every dimension), or one within :data:`TIE` of it, is among the ``1 + MARGIN``
    nearest in the projected space, which is what a search re-ranks. Fewer directions make
    every hop of the graph cheaper; how many a gallery can spare depends on how its faces
    crowd, so it is measured on the gallery itself (two passes over the rows: ~12 s at a
    million 512-D faces on two cores)."""
    count = len(rows)
    full = matrix.shape[1]
    widths = sorted({min(full, max(8, round(full * share))) for share in WIDTHS})
    if count < 2 or widths == [full]:
        return matrix
    picks = spaced(count, queries)
    unit_q = rows[picks]
    q_p = unit_q @ matrix
    q_norms = {w: np.linalg.norm(q_p[:, :w], axis=1) for w in widths}
    best = nearest_other_similarity(rows, picks)
    tops = {w: _Top(len(picks), 1 + MARGIN) for w in widths}
    # A small first block seeds each query's bar, so later blocks pass only the few rows
    # above it (a full sort of every block would cost more than the matrix products).
    bounds = [0, *range(min(count, 1024), count, 16_384), count]
    for start, stop in itertools.pairwise(bounds):
        block = rows[start:stop]
        own = (picks >= start) & (picks < stop)
        mine = (np.flatnonzero(own), picks[own] - start)
        block_p = block @ matrix
        squares = np.cumsum(block_p * block_p, axis=1)
        dots = np.zeros((len(picks), len(block)), np.float32)
        done = 0
        for w in widths:  # each width's dot products extend the narrower one's
            dots += q_p[:, done:w] @ block_p[:, done:w].T
            done = w
            norms = np.maximum(np.outer(q_norms[w], np.sqrt(squares[:, w - 1])), 1e-12)
            cos = (dots / norms).astype(np.float32, copy=False)
            cos[mine] = -np.inf
            tops[w].merge(cos, start)
    for w in widths:
        # the exact similarity of the best of each query's projected candidates
        reached = np.einsum("qcd,qd->qc", rows[tops[w].found], unit_q).max(1)
        if float(np.mean(reached >= best - TIE)) >= MIN_FIDELITY:
            return np.ascontiguousarray(matrix[:, :w])
    return matrix


class _Top:
    """The ``kept`` highest-scoring columns seen so far, per query row."""

    def __init__(self, queries: int, kept: int) -> None:
        self.found = np.zeros((queries, kept), np.intp)
        self.scores = np.full((queries, kept), -np.inf, np.float32)

    def merge(self, scores: NDArray[np.float32], offset: int) -> None:
        """Take in a block of scores (queries × columns; column j is row ``offset + j``)."""
        queries, kept = self.found.shape
        rows, cols = np.nonzero(scores > self.scores[:, -1:])
        if not rows.size:
            return
        all_q = np.concatenate([np.repeat(np.arange(queries), kept), rows])
        all_i = np.concatenate([self.found.ravel(), cols + offset])
        all_s = np.concatenate([self.scores.ravel(), scores[rows, cols]])
        order = np.lexsort((-all_s, all_q))  # by query, best first
        all_q, all_i, all_s = all_q[order], all_i[order], all_s[order]
        rank = np.arange(len(all_q)) - np.searchsorted(all_q, np.arange(queries))[all_q]
        keep = rank < kept  # every query has at least ``kept`` entries (its old ones)
        self.found = all_i[keep].reshape(queries, kept)
        self.scores = all_s[keep].reshape(queries, kept)


def project(rows: NDArray[np.float32], matrix: NDArray[np.float32]) -> NDArray[np.float32]:
    """Unit rows in the projected space (i8 graphs round unit vectors)."""
    return unit_rows(np.ascontiguousarray(rows @ matrix, dtype=np.float32))


def project_query(query: NDArray[np.float32], matrix: NDArray[np.float32]) -> NDArray[np.float32]:
    """One vector as :func:`project` gives it, without the row path's checks (~10 µs a
    search)."""
    v = query @ matrix
    norm = float(np.sqrt(v @ v))
    return v / np.float32(norm) if norm > 0 else v


def self_check(
    rows: NDArray[np.float32],
    nearest_other: Callable[[int], int],
    queries: int = CHECK_QUERIES,
) -> float:
    """Share of ``queries`` evenly spaced rows (unit rows, cosine) for which ``nearest_other``
    (row number → the row number the graph search finds nearest, itself excluded; -1: none)
    finds a row as near as the exact nearest other row, or within :data:`TIE` of it."""
    count = len(rows)
    if count < 2:
        return 1.0
    picks = spaced(count, queries)
    unit_q = rows[picks]
    best = nearest_other_similarity(rows, picks)
    hits = 0
    for query, pick, exact in zip(unit_q, picks.tolist(), best.tolist(), strict=True):
        found = nearest_other(pick)
        if found not in (-1, pick) and float(rows[found] @ query) >= exact - TIE:
            hits += 1
    return hits / len(picks)
