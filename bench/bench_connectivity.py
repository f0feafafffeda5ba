"""HNSW links per face (M) and build order: recall@1 against latency, graphs side by side.

For each M (and each build order: ``locality``, the service's default, near faces inserted
together, see ``facerec.storage.build_order``; ``given``, the gallery's own order) an
``HnswIndex`` is built as the service builds it (``IndexOptions`` with only those changed:
graph type, projection, ef_construction, orphan list), saved, and restored from its snapshot as
a restart does (2 MiB pages where Linux allows). Then, for each ef of a grid, every query is
searched once (k=1, one thread) on each graph, the graphs taking turns on every query so that a
noisy neighbour slows them alike. The summary gives, per graph, the first ef at which recall@1
reaches the goal and the p50 there.

    python bench/bench_connectivity.py --size 1000000 --dim 512 --connectivity 16,32
    python bench/bench_connectivity.py --size 100000 --dim 512 --data spread
    python bench/bench_connectivity.py --size 1000000 --dim 512 --connectivity 32 --order both

Writes the ``index_connectivity_<data>_<size>`` section of BENCHMARKS.md (``..._<dim>`` unless
512-D), or with ``--order both`` the ``index_build_order_<data>_<size>_<dim>`` one
(``--no-write``: only print it).
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(REPO))

from bench.bench_index import (  # noqa: E402
    Nearest,
    identity_recall_at_1,
    recall_at_1,
    sweep_data,
    sweep_nearest,
    timed_side_by_side,
    top_key,
)
from bench.report import percentile, write_section  # noqa: E402
from facerec.storage.hnsw_index import HnswIndex  # noqa: E402
from facerec.storage.index_builds import configured_hnsw  # noqa: E402
from facerec.storage.index_options import IndexOptions  # noqa: E402
from facerec.storage.models import EmbeddingSpace  # noqa: E402
from facerec.values import Metric  # noqa: E402

PER_ID = 4  # faces per synthetic identity
EFS = (16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96)
GOAL = 0.999


@dataclass
class Graph:
    label: str  # M, and the build order when compared
    index: HnswIndex
    build_s: float
    load_s: float
    memory_mb: float
    build_ef: int  # the configured ef: the build's orphan self-check searches at it


@dataclass
class Point:
    label: str
    ef: int
    p50_ms: float
    p95_ms: float
    recall: float
    identity: float  # identity recall@1: the face found is the exact nearest one's identity


def built(
    variant: tuple[int, str],
    data: NDArray[np.float32],
    metric: Metric,
    threads: int,
    root: Path,
    label: str,
) -> Graph:
    """Built as the service builds it (M and build order from ``variant``), then restored from
    its snapshot as a restart does."""
    connectivity, order = variant
    options = replace(
        IndexOptions(),
        connectivity=connectivity,
        build_threads=threads,
        ordered_build=order == "locality",
    )
    index = configured_hnsw(
        options, EmbeddingSpace(f"bench@{data.shape[1]}", data.shape[1], metric)
    )
    ids = [f"{i:032x}" for i in range(len(data))]
    started = time.perf_counter()
    index.add(ids, data)
    build = time.perf_counter() - started
    path = root / f"m{connectivity}-{order}.hnsw"
    index.save(path)
    del index
    gc.collect()
    started = time.perf_counter()
    restored = HnswIndex.load(path, huge_pages=options.huge_pages)
    load = time.perf_counter() - started
    restored.threads = 1
    path.unlink()
    memory = restored.memory_bytes() / 2**20
    print(
        f"{label}: built in {build:.1f} s, restored in {load:.2f} s, {memory:.0f} MB, "
        f"{restored.orphans} orphans, graph {graph_name(restored)}",
        flush=True,
    )
    return Graph(label, restored, build, load, memory, options.search_ef(metric))


def ef_rows(
    graphs: list[tuple[str, HnswIndex]],
    efs: tuple[int, ...],
    data: NDArray[np.float32],
    qs: NDArray[np.float32],
    truth: NDArray[np.float64],
) -> list[str]:
    """Each labelled graph (cosine) at each ef of ``efs``, side by side: the markdown rows
    ``| label | ef | recall@1 | p50 ms |``, printed as they come."""
    rows = []
    for ef in efs:
        for _, index in graphs:
            index.expansion_search = ef
        measured = timed_side_by_side([top_key(index) for _, index in graphs], qs)
        for (label, _), (times, found) in zip(graphs, measured, strict=True):
            recall = recall_at_1(data, qs, found, truth, "cosine")
            p50 = percentile(times, 50)
            rows.append(f"| {label} | {ef} | {recall:.4f} | {p50:.3f} |")
            print(f"  {label}, ef {ef}: recall@1 {recall:.4f}, p50 {p50:.3f} ms", flush=True)
    return rows


def graph_name(index: HnswIndex) -> str:
    name = str(index.dtype)
    if index.projection is not None:
        name += f" on {index.projection.shape[1]} of {index.dim} directions"
    return name


def sweep(
    graphs: list[Graph],
    data: NDArray[np.float32],
    qs: NDArray[np.float32],
    truth: Nearest,
    metric: Metric,
    efs: tuple[int, ...] = EFS,
) -> list[Point]:
    """Every ef of the grid on every graph that has not yet reached recall@1 1.0, side by
    side; stops once each has."""
    points: list[Point] = []
    done: set[str] = set()
    for ef in efs:
        active = [g for g in graphs if g.label not in done]
        if not active:
            break
        for point in measured_at(active, ef, data, qs, truth, metric):
            points.append(point)
            if point.recall >= 1.0:
                done.add(point.label)
    return points


def measured_at(
    graphs: list[Graph],
    ef: int,
    data: NDArray[np.float32],
    qs: NDArray[np.float32],
    truth: Nearest,
    metric: Metric,
) -> list[Point]:
    """Each graph at ``ef``, side by side."""
    for graph in graphs:
        graph.index.expansion_search = ef
    points = []
    measured = timed_side_by_side([top_key(g.index) for g in graphs], qs)
    for graph, (times, found) in zip(graphs, measured, strict=True):
        recall = recall_at_1(data, qs, found, truth.distance, metric)
        identity = identity_recall_at_1(found, truth.row, PER_ID)
        p50, p95 = percentile(times, 50), percentile(times, 95)
        point = Point(graph.label, ef, p50, p95, recall, identity)
        points.append(point)
        print(
            f"  {point.label} ef {ef:3d}: p50 {p50:.3f} ms, p95 {p95:.3f} ms, recall@1 "
            f"{recall:.4f}, identity {identity:.4f}",
            flush=True,
        )
    return points


def write(
    graphs: list[Graph],
    points: list[Point],
    service: list[Point],
    args: argparse.Namespace,
    load: tuple[float, ...],
) -> None:
    """``service``: every graph at the service's configured ef, side by side."""
    summary = [
        "| graph build | graph | build s | restart s | index MB | orphans | first ef at recall@1 "
        f"≥ {GOAL} | p50 ms there | p95 ms there | at the service's ef "
        f"({graphs[0].build_ef}): recall@1, identity recall@1, p50 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    at_service = {p.label: p for p in service}
    for graph in graphs:
        own = at_service[graph.label]
        reached = [p for p in points if p.label == graph.label and p.recall >= GOAL]
        first = reached[0] if reached else None
        summary.append(
            f"| {graph.label} | {graph_name(graph.index)} | {graph.build_s:.0f} | "
            f"{graph.load_s:.1f} | {graph.memory_mb:.0f} | {graph.index.orphans} | "
            + (
                f"{first.ef} | **{first.p50_ms:.3f}** | {first.p95_ms:.3f} |"
                if first
                else "not reached | - | - |"
            )
            + f" {own.recall:.4f}, {own.identity:.4f}, {own.p50_ms:.3f} |"
        )
    detail = [
        "| graph | ef | p50 ms | p95 ms | recall@1 | identity recall@1 |",
        "|---|---:|---:|---:|---:|---:|",
    ] + [
        f"| {p.label} | {p.ef} | {p.p50_ms:.3f} | {p.p95_ms:.3f} | {p.recall:.4f} "
        f"| {p.identity:.4f} |"
        for p in sorted(points, key=lambda p: (p.label, p.ef))
    ]
    body = (
        f"- gallery: {args.size:,} synthetic faces, {args.dim}-D, `{args.data}` "
        "(`bench_index.sweep_data`: identities of 4 faces, about 0.7 cosine within one); "
        f"{args.queries} queries, new faces of enrolled identities; recall@1: the face found is "
        "as near as the exact nearest (float64); identity recall@1: the face found belongs to "
        "the exact nearest face's identity (what a decision by person needs).\n"
        "- each graph built as the service builds it (`IndexOptions` with only M and the build "
        f"order changed; {args.threads} build threads; its orphan self-check at the configured ef, "
        f"{graphs[0].build_ef}), saved and restored from its snapshot (2 MiB pages where "
        "Linux allows); one k=1 search per query and graph on one thread, the graphs taking "
        "turns on every query. Build order locality: near faces inserted together (k-means "
        "clusters, `facerec.storage.build_order`, the service's default); given: the gallery's "
        "own order. A graph leaves the grid once it reaches recall@1 1.0; the others "
        "go on alone from there (no longer side by side). Then every graph is measured again at "
        "the service's configured ef, side by side.\n"
        f"- load average (1 / 5 / 15 min) before: {load[0]:.2f} / {load[1]:.2f} / "
        f"{load[2]:.2f}; after: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs, shared).\n\n"
        + "\n".join(summary)
        + "\n\nEvery ef measured:\n\n"
        + "\n".join(detail)
    )
    if args.no_write:
        print(body)
    elif args.order == "both":
        write_section(
            f"index_build_order_{args.data}_{size_label(args.size)}_{args.dim}",
            f"HNSW build order, side by side: {args.data} gallery, {args.size:,} faces, "
            f"{args.dim}-D",
            body,
        )
    else:
        dim = "" if args.dim == 512 else f"_{args.dim}"  # 512-D sections keep their names
        write_section(
            f"index_connectivity_{args.data}_{size_label(args.size)}{dim}",
            f"HNSW links per face (M), side by side: {args.data} gallery, {args.size:,} faces, "
            f"{args.dim}-D",
            body,
        )


def variant_label(connectivity: str, order: str, args: argparse.Namespace) -> str:
    """``M 32``, or ``M 32, given order`` when build orders are compared or not the default."""
    return f"M {connectivity}" + ("" if args.order == "locality" else f", {order} order")


def size_label(size: int) -> str:
    """``1m``, ``100k``, ``2500``: the gallery size in a section name."""
    if size % 1_000_000 == 0:
        return f"{size // 1_000_000}m"
    return f"{size // 1000}k" if size % 1000 == 0 else str(size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--data", default="clustered", choices=("clustered", "spread"))
    parser.add_argument("--connectivity", default="16,32", help="the values of M to compare")
    parser.add_argument(
        "--order",
        default="locality",
        choices=("locality", "given", "both"),
        help="the build order (locality: the service's; both: compare them)",
    )
    parser.add_argument(
        "--efs", default=",".join(map(str, EFS)), help="the ef grid (search expansion)"
    )
    parser.add_argument("--queries", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=2, help="build threads")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()
    metric: Metric = "cosine" if args.dim > 128 else "l2"
    data, qs = sweep_data(args.data, args.size, args.dim, PER_ID, args.queries)
    truth = sweep_nearest(data, qs, metric)
    root = Path(tempfile.mkdtemp(prefix="facerec-bench-m-"))
    try:
        orders = ("locality", "given") if args.order == "both" else (args.order,)
        graphs = [
            built((int(m), order), data, metric, args.threads, root, variant_label(m, order, args))
            for m in args.connectivity.split(",")
            for order in orders
        ]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    points = sweep(graphs, data, qs, truth, metric, tuple(int(e) for e in args.efs.split(",")))
    service = measured_at(graphs, graphs[0].build_ef, data, qs, truth, metric)
    write(graphs, points, service, args, load)


if __name__ == "__main__":
    main()
