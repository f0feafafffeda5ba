"""Clustering of unknown faces into suggested new persons: Chinese whispers on a threshold graph.

The graph joins two faces when their distance is within the embedder's 1:1 threshold (the
distance at which ``compare`` says "same person"); each edge weighs ``1 − d / threshold``, so
near-threshold edges count little. Chinese whispers (Biemann 2006, the algorithm dlib's
``chinese_whispers_clustering`` uses for faces) then lets every node take, in random order, the
label with the largest total edge weight among its neighbours until the labels settle: the number
of clusters is not given in advance and a chain of look-alikes is cut where it is thinnest.

Incremental: a new face *joins* a cluster when it is within the threshold of at least
``join_fraction`` of that cluster's faces; otherwise only the part of the graph it touches (its
connected component) is clustered again, and the new clusters keep the ids of the old clusters
they overlap most. Clusters smaller than ``min_size`` are no suggestion.

Pure NumPy on one (collection, embedding space) slice; the caller loads and stores the labels.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

BLOCK = 2048  # rows of the distance matrix computed at once (2048 × 10k float32: 80 MB)


@dataclass(frozen=True)
class ClusterParams:
    metric: str  # "l2" or "cosine" (1 − cos)
    threshold: float  # the embedder's 1:1 distance threshold
    min_size: int = 2
    iterations: int = 30
    join_fraction: float = 0.5
    seed: int = 0


@dataclass(frozen=True)
class Graph:
    """Undirected threshold graph in CSR form (each edge stored both ways)."""

    indptr: NDArray[np.int64]
    indices: NDArray[np.int64]
    weights: NDArray[np.float32]

    @property
    def size(self) -> int:
        return len(self.indptr) - 1

    def neighbours(self, node: int) -> NDArray[np.int64]:
        return self.indices[self.indptr[node] : self.indptr[node + 1]]


def distances(a: NDArray[np.float32], b: NDArray[np.float32], metric: str) -> NDArray[np.float32]:
    """Pairwise distances, shape (len(a), len(b))."""
    if metric == "cosine":
        an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        return np.asarray(1.0 - an @ bn.T, dtype=np.float32)
    squared = (
        np.einsum("ij,ij->i", a, a)[:, None] + np.einsum("ij,ij->i", b, b)[None, :] - 2.0 * a @ b.T
    )
    result: NDArray[np.float32] = np.sqrt(np.maximum(squared, 0.0)).astype(np.float32)
    return result


def threshold_graph(vectors: NDArray[np.float32], params: ClusterParams) -> Graph:
    """Every pair of faces within the threshold, blockwise (memory: BLOCK × n)."""
    n = len(vectors)
    rows: list[NDArray[np.int64]] = []
    cols: list[NDArray[np.int64]] = []
    weights: list[NDArray[np.float32]] = []
    vectors = np.asarray(vectors, dtype=np.float32)
    for start in range(0, n, BLOCK):
        block = distances(vectors[start : start + BLOCK], vectors, params.metric)
        r, c = np.nonzero(block <= params.threshold)
        keep = (r + start) != c
        r, c = r[keep], c[keep]
        rows.append((r + start).astype(np.int64))
        cols.append(c.astype(np.int64))
        weights.append((1.0 - block[r, c] / params.threshold).astype(np.float32) + 1e-3)
    return _csr(n, rows, cols, weights)


def _csr(
    n: int,
    rows: Sequence[NDArray[np.int64]],
    cols: Sequence[NDArray[np.int64]],
    weights: Sequence[NDArray[np.float32]],
) -> Graph:
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    w = np.concatenate(weights) if weights else np.zeros(0, np.float32)
    order = np.lexsort((c, r))
    counts = np.bincount(r, minlength=n)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    return Graph(indptr, c[order], w[order])


def chinese_whispers(graph: Graph, iterations: int = 30, seed: int = 0) -> NDArray[np.int64]:
    """A label per node (labels are node numbers; isolated nodes keep their own)."""
    n = graph.size
    labels = np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    connected = np.flatnonzero(np.diff(graph.indptr) > 0)
    for _ in range(iterations):
        changed = 0
        for node in rng.permutation(connected).tolist():
            lo, hi = graph.indptr[node], graph.indptr[node + 1]
            neighbour_labels = labels[graph.indices[lo:hi]]
            weight = graph.weights[lo:hi]
            unique, inverse = np.unique(neighbour_labels, return_inverse=True)
            best = int(unique[np.argmax(np.bincount(inverse, weights=weight))])
            if best != labels[node]:
                labels[node] = best
                changed += 1
        if changed == 0:
            break
    return labels


def cluster(vectors: NDArray[np.float32], params: ClusterParams) -> list[int | None]:
    """Full clustering: a cluster number per face (None: in no cluster of ``min_size``)."""
    if len(vectors) == 0:
        return []
    labels = chinese_whispers(threshold_graph(vectors, params), params.iterations, params.seed)
    return numbered(labels.tolist(), params.min_size)


def numbered(labels: Sequence[int], min_size: int) -> list[int | None]:
    sizes = Counter(labels)
    numbers: dict[int, int] = {}
    out: list[int | None] = []
    for label in labels:
        if sizes[label] < min_size:
            out.append(None)
        else:
            out.append(numbers.setdefault(label, len(numbers)))
    return out


def update(
    vectors: NDArray[np.float32],
    labels: Sequence[str | None],
    new: Sequence[int],
    params: ClusterParams,
    new_id: Callable[[], str],
) -> list[str | None]:
    """Incremental clustering: ``labels`` are the current cluster ids of the faces (None: none)
    and ``new`` the positions of faces not clustered yet. Returns every face's cluster id."""
    result = list(labels)
    vectors = np.asarray(vectors, dtype=np.float32)
    members: dict[str, set[int]] = {}
    for i, label in enumerate(result):
        if label is not None:
            members.setdefault(label, set()).add(i)
    touched: list[int] = []
    if len(new):
        near = distances(vectors[list(new)], vectors, params.metric) <= params.threshold
        for row, i in enumerate(new):
            neighbours = set(np.flatnonzero(near[row]).tolist()) - {i}
            best, best_share = None, 0.0
            for label in {lab for j in neighbours if (lab := result[j]) is not None}:
                share = len(neighbours & members[label]) / len(members[label])
                if share > best_share:
                    best, best_share = label, share
            if best is not None and best_share >= params.join_fraction:
                result[i] = best
                members[best].add(i)
            else:
                touched.append(i)
    if touched:
        _recluster(vectors, result, touched, params, new_id)
    return result


def _recluster(
    vectors: NDArray[np.float32],
    result: list[str | None],
    touched: Sequence[int],
    params: ClusterParams,
    new_id: Callable[[], str],
) -> None:
    """Chinese whispers again on the connected component(s) of the touched faces."""
    component = _component(vectors, touched, params)
    sub = vectors[component]
    labels = chinese_whispers(threshold_graph(sub, params), params.iterations, params.seed)
    groups: dict[int, list[int]] = {}
    for local, number in enumerate(numbered(labels.tolist(), params.min_size)):
        if number is not None:
            groups.setdefault(number, []).append(component[local])
    taken: set[str] = set()
    old = {node: result[node] for node in component}
    for node in component:
        result[node] = None
    # Largest groups first keep the old id they overlap most.
    for faces in sorted(groups.values(), key=len, reverse=True):
        votes = Counter(o for f in faces if (o := old[f]) is not None and o not in taken)
        label = votes.most_common(1)[0][0] if votes else new_id()
        taken.add(label)
        for f in faces:
            result[f] = label


def _component(
    vectors: NDArray[np.float32], seeds: Sequence[int], params: ClusterParams
) -> list[int]:
    """Faces connected to ``seeds`` in the threshold graph (breadth first, blockwise)."""
    seen = np.zeros(len(vectors), dtype=bool)
    seen[list(seeds)] = True
    frontier = list(seeds)
    while frontier:
        found: set[int] = set()
        for start in range(0, len(frontier), BLOCK):
            block = frontier[start : start + BLOCK]
            near = distances(vectors[block], vectors, params.metric) <= params.threshold
            found.update(np.flatnonzero(near.any(axis=0) & ~seen).tolist())
        frontier = sorted(found)
        seen[frontier] = True
    return np.flatnonzero(seen).tolist()


def cohesion(
    vectors: NDArray[np.float32], metric: str, similarity: Callable[[float], float]
) -> float:
    """Mean similarity over the pairs of a cluster's faces."""
    n = len(vectors)
    if n < 2:
        return 1.0
    d = distances(vectors, vectors, metric)
    upper = d[np.triu_indices(n, k=1)]
    return float(np.mean([similarity(float(x)) for x in upper]))
