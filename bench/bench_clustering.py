"""Clustering of unknown photo faces (Chinese whispers on the 1:1-threshold graph): time and
quality on 10k synthetic faces, full and incremental.

Synthetic embeddings with a realistic structure: ``--people`` identities × ``--samples`` noisy
samples. Identity centres are Gaussian, scaled so that two persons are about as far apart as
impostors are for the embedder (dlib 128-D L2: ~0.85; w600k 512-D cosine: ~0.95), samples
scatter around their centre with a per-sample noise scale drawn log-normally (most samples
close, a tail of poor photos near or beyond the threshold), as genuine pairs do.

Full: the threshold graph (blockwise distances) and Chinese whispers over every face.
Incremental: the first faces clustered, then the rest arrive one face per photo (a join or a
re-clustered component each), as :meth:`PhotoService` does after each stored photo.
Quality: pairwise precision (pairs put together that are one person) and recall (pairs of one
person put together), and how many suggestions of at least 2 faces.

    .venv/bin/python -m bench.bench_clustering [--people 1000 --samples 10 --incremental 200]
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bench.report import percentile, write_section
from facerec.domain import clustering
from facerec.domain.clustering import ClusterParams


@dataclass(frozen=True)
class Space:
    name: str
    dim: int
    params: ClusterParams
    impostor: float  # typical distance between two persons
    genuine: float  # typical distance between two photos of one person


SPACES = (
    Space("dlib_resnet (128-D, L2, t=0.6)", 128, ClusterParams("l2", 0.6), 0.85, 0.42),
    Space("w600k_mbf (512-D, cosine, t=0.66)", 512, ClusterParams("cosine", 0.66), 0.95, 0.45),
)


def faces(
    space: Space, people: int, samples: int, seed: int
) -> tuple[NDArray[np.float32], list[int]]:
    rng = np.random.default_rng(seed)
    dim = space.dim
    if space.params.metric == "l2":
        centres = rng.normal(0.0, space.impostor / np.sqrt(2 * dim), (people, dim))
        scale = space.genuine / np.sqrt(2 * dim)
    else:  # cosine: 1 − cos ≈ ‖a − b‖² / 2 for unit vectors
        centres = rng.normal(0.0, 1.0, (people, dim))
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        scale = np.sqrt(2 * space.genuine) / np.sqrt(2 * dim)
    truth = [p for p in range(people) for _ in range(samples)]
    spread = rng.lognormal(0.0, 0.25, len(truth))[:, None]
    noise = rng.normal(0.0, 1.0, (len(truth), dim)) * scale * spread
    return (centres[truth] + noise).astype(np.float32), truth


def pair_scores(
    labels: list[int | None] | list[str | None], truth: list[int]
) -> tuple[float, float]:
    """Pairwise precision and recall of the clusters against the identities."""
    together: Counter[tuple[object, int]] = Counter()
    by_label: Counter[object] = Counter()
    for label, person in zip(labels, truth, strict=True):
        if label is not None:
            together[(label, person)] += 1
            by_label[label] += 1
    same_cluster_same_person = sum(n * (n - 1) // 2 for n in together.values())
    same_cluster = sum(n * (n - 1) // 2 for n in by_label.values())
    same_person = sum(n * (n - 1) // 2 for n in Counter(truth).values())
    precision = same_cluster_same_person / same_cluster if same_cluster else 1.0
    return precision, same_cluster_same_person / same_person


def run(space: Space, people: int, samples: int, incremental: int) -> list[str]:
    vectors, truth = faces(space, people, samples, seed=7)
    n = len(truth)
    params = space.params
    start = time.perf_counter()
    graph = clustering.threshold_graph(vectors, params)
    graph_s = time.perf_counter() - start
    start = time.perf_counter()
    raw = clustering.chinese_whispers(graph, params.iterations, params.seed)
    whispers_s = time.perf_counter() - start
    labels = clustering.numbered(raw.tolist(), params.min_size)
    precision, recall = pair_scores(labels, truth)
    suggestions = len({label for label in labels if label is not None})
    full = (
        f"| {space.name} | full | {n:,} | {graph_s + whispers_s:.2f} s "
        f"(graph {graph_s:.2f} s, whispers {whispers_s:.2f} s; {len(graph.indices) // 2:,} edges) "
        f"| {suggestions:,} | {precision:.3f} | {recall:.3f} |"
    )
    # Incremental: the last ``incremental`` faces (spread over identities) arrive one by one.
    order = np.random.default_rng(1).permutation(n).tolist()
    base, late = order[: n - incremental], order[n - incremental :]
    ids = (f"s{i}" for i in itertools.count())
    current: list[str | None] = [
        None if label is None else f"b{label}"
        for label in clustering.cluster(vectors[base], params)
    ]
    members = list(base)
    times: list[float] = []
    for face in late:
        members.append(face)
        start = time.perf_counter()
        current = clustering.update(
            vectors[members], [*current, None], [len(members) - 1], params, lambda: next(ids)
        )
        times.append(time.perf_counter() - start)
    precision, recall = pair_scores(current, [truth[i] for i in members])
    suggestions = len({label for label in current if label is not None})
    inc = (
        f"| {space.name} | incremental, {incremental} faces one by one onto {n - incremental:,} "
        f"| {n:,} | p50 {percentile(times, 50) * 1000:.1f} ms, p95 "
        f"{percentile(times, 95) * 1000:.1f} ms per face "
        f"| {suggestions:,} | {precision:.3f} | {recall:.3f} |"
    )
    print(full)
    print(inc)
    return [full, inc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--incremental", type=int, default=200)
    args = parser.parse_args()
    lines = [
        "| embedding space | run | faces | time | suggestions | pair precision | pair recall |",
        "|---|---|---|---|---|---|---|",
    ]
    for space in SPACES:
        lines += run(space, args.people, args.samples, args.incremental)
    body = (
        f"{args.people:,} synthetic identities × {args.samples} noisy samples per embedding space "
        "(`bench/bench_clustering.py` docstring: Gaussian identity centres at the embedder's "
        "typical impostor distance, log-normal per-sample noise around its genuine distance). "
        "Chinese whispers on the graph of pairs within the embedder's 1:1 threshold, edge weight "
        "`1 − d/t`, at most 30 rounds, one thread (NumPy). Incremental: each new face joins a "
        "suggestion when within the threshold of at least half its faces, else its connected "
        "component is clustered again. Pair precision: pairs put in one suggestion that are one "
        "person; pair recall: pairs of one person put in one suggestion. The service also reads "
        "the slice's unknown faces from the database on each update (not timed here).\n\n"
        + "\n".join(lines)
    )
    write_section("clustering", "Clustering unknown photo faces", body)


if __name__ == "__main__":
    main()
