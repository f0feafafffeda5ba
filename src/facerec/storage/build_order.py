"""The order a new HNSW graph takes its faces in: near faces one after another.

A graph built from a gallery in the order it was enrolled links each face while its true
neighbours are scattered through the insertion sequence. Inserted cluster by cluster (a coarse
k-means of the rows, the clusters chained nearest to nearest), each face arrives while its
neighbourhood is being built, and fewer faces end up where graph search cannot reach them:
on 1,000,000 spread 512-D faces (i8 graph on 64 directions, M 32), the orphan list went from 572
faces to 192 and recall@1 0.999 came at ef 40 instead of 48 (BENCHMARKS.md, "HNSW build order";
docs/index.md, "The order a graph is built in"). Neighbours also sit near each other in the
graph's memory (usearch hands out slots in insertion order). Keys do not change: only the order
of the graph's adds does.

The clustering runs on the rows' :data:`DIMS` principal directions (a sample's), so its cost is
small beside the build: seconds at a million faces.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

ORDER_FROM = 10_000  # fewer rows: the given order (a small graph finds its faces anyway)
ROWS_PER_CLUSTER = 512
MAX_CLUSTERS = 4_096
SAMPLE_ROWS = 100_000  # rows the clusters are fitted on (evenly spaced)
DIMS = 32  # principal directions the rows are clustered on
ITERATIONS = 8
BLOCK = 1_024  # rows assigned at a time (a block × clusters matrix of scores, kept in cache)
ADD_CHUNK = 65_536  # rows handed to the graph per add (one chunk's copy in memory at a time)


def locality_order(rows: NDArray[np.float32]) -> NDArray[np.intp] | None:
    """A permutation of ``rows`` that puts each cluster's rows together, clusters chained so
    that each follows the nearest one left; None below :data:`ORDER_FROM` rows."""
    count = len(rows)
    if count < ORDER_FROM:
        return None
    clusters = min(MAX_CLUSTERS, count // ROWS_PER_CLUSTER)
    picks = _spaced(count, SAMPLE_ROWS)  # the rows the clusters are fitted on
    sample = np.asarray(rows[picks], np.float32)
    mean = sample.mean(axis=0)
    basis = _principal(sample - mean, min(DIMS, rows.shape[1]))
    reduced = np.empty((count, basis.shape[1]), np.float32)
    for start in range(0, count, 65_536):
        reduced[start : start + 65_536] = (rows[start : start + 65_536] - mean) @ basis
    fitted = reduced[picks]
    centres = _seeds(fitted, clusters)
    for _ in range(ITERATIONS):
        centres = _means(fitted, _nearest(fitted, centres), centres)
    labels = _nearest(reduced, centres)
    rank = np.empty(clusters, np.intp)
    rank[_chain(centres)] = np.arange(clusters)
    # by cluster, and inside one along the first principal direction
    return np.lexsort((reduced[:, 0], rank[labels])).astype(np.intp)


def add_in_order(
    graph: Any,
    keys: NDArray[np.uint64],
    rows: NDArray[np.float32],
    threads: int,
    ordered: bool = True,
) -> None:
    """A new graph's first add: ``graph.add(keys, rows)``, the rows taken in
    :func:`locality_order` when ``ordered`` (a chunk at a time, so no second copy of the rows is
    made)."""
    order = locality_order(rows) if ordered else None
    if order is None:
        graph.add(keys, rows, threads=threads)
        return
    for start in range(0, len(order), ADD_CHUNK):
        chunk = order[start : start + ADD_CHUNK]
        graph.add(keys[chunk], np.ascontiguousarray(rows[chunk]), threads=threads)


def _spaced(count: int, wanted: int) -> NDArray[np.intp]:
    return np.linspace(0, count - 1, min(count, wanted)).astype(np.intp)


def _principal(centred: NDArray[np.float32], dims: int) -> NDArray[np.float32]:
    """The (dim, dims) top principal directions of centred rows."""
    values, vectors = np.linalg.eigh((centred.T @ centred).astype(np.float64))
    return np.ascontiguousarray(vectors[:, np.argsort(values)[::-1][:dims]], np.float32)


def _seeds(points: NDArray[np.float32], clusters: int) -> NDArray[np.float32]:
    """k-means++ seeds (each next one drawn with probability by its squared distance to the
    nearest seed so far; a fixed random stream, so a build is repeatable)."""
    rng = np.random.default_rng(0)
    squares = np.einsum("ij,ij->i", points, points)
    chosen = [int(rng.integers(len(points)))]
    nearest = np.full(len(points), np.inf, np.float32)
    for _ in range(clusters - 1):
        seed = points[chosen[-1]]
        distances = squares - 2.0 * (points @ seed) + float(seed @ seed)
        nearest = np.maximum(np.minimum(nearest, distances), 0.0)
        weights = np.cumsum(nearest, dtype=np.float64)
        if weights[-1] <= 0:  # every point is a seed already
            chosen.append(int(rng.integers(len(points))))
        else:
            pick = np.searchsorted(weights, rng.random() * weights[-1], side="right")
            chosen.append(min(int(pick), len(points) - 1))
    return points[chosen].copy()


def _nearest(points: NDArray[np.float32], centres: NDArray[np.float32]) -> NDArray[np.intp]:
    """The nearest centre of each point (Euclidean), a block of points at a time."""
    half_squares = 0.5 * np.einsum("ij,ij->i", centres, centres)
    labels = np.empty(len(points), np.intp)
    for start in range(0, len(points), BLOCK):
        # nearest = the largest p·c - |c|²/2; in place, on a block that stays in cache
        scores = points[start : start + BLOCK] @ centres.T
        scores -= half_squares
        labels[start : start + BLOCK] = np.argmax(scores, axis=1)
    return labels


def _means(
    points: NDArray[np.float32], labels: NDArray[np.intp], centres: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Each cluster's mean (an empty cluster keeps its centre)."""
    sums = np.zeros_like(centres, dtype=np.float64)
    np.add.at(sums, labels, points)
    sizes = np.bincount(labels, minlength=len(centres))
    filled = sizes > 0
    updated = centres.copy()
    updated[filled] = (sums[filled] / sizes[filled, None]).astype(np.float32)
    return updated


def _chain(centres: NDArray[np.float32]) -> list[int]:
    """The clusters in a greedy path: from the first, each time the nearest one not yet taken."""
    squares = np.einsum("ij,ij->i", centres, centres)
    taken = np.zeros(len(centres), bool)
    path = [0]
    taken[0] = True
    for _ in range(len(centres) - 1):
        last = centres[path[-1]]
        distances = squares - 2.0 * (centres @ last)
        distances[taken] = np.inf
        path.append(int(np.argmin(distances)))
        taken[path[-1]] = True
    return path
