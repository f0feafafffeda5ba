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
    finds a row as near as the exact nearest other row."""
    count = len(rows)
    if count < 2:
        return 1.0
    picks = np.linspace(0, count - 1, min(queries, count)).astype(np.intp)
    unit_q = rows[picks]
    best = np.full(len(picks), -np.inf, np.float32)
    for start in range(0, count, 65_536):
        sims = unit_q @ rows[start : start + 65_536].T
        own = (picks >= start) & (picks < start + sims.shape[1])
        sims[np.flatnonzero(own), picks[own] - start] = -np.inf  # not itself
        best = np.maximum(best, sims.max(1))
    hits = 0
    for query, pick, exact in zip(unit_q, picks.tolist(), best.tolist(), strict=True):
        found = nearest_other(pick)
        # A face at the same distance as the exact nearest (a tie) is as good an answer.
        if found not in (-1, pick) and float(rows[found] @ query) >= exact - 1e-6:
            hits += 1
    return hits / len(picks)
