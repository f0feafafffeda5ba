"""Faces an HNSW graph cannot find: how many, what finding them costs, what the orphan list buys.

For each gallery (``bench_index.sweep_data``: identities with 4 faces each; ``--data`` tight
adds near-identical groups, like burst shots or video frames) an ``HnswIndex`` is built as the
service builds it (``--threads`` build threads, the service's graph settings), then:

- orphans: faces a graph search for their own vector does not return (kept in the exact orphan
  list by the build), and identities all of whose faces are orphans (never identified without
  the list);
- check s: the build's self-search of every face, timed again on its own (share of build s);
- recall@1 of new faces of enrolled identities and of the orphans' own vectors, with the orphan
  list and without it (graph only), and the p50 of one k=1 search both ways, taking turns on
  every query.

    python bench/bench_reachability.py --sizes 100000 --dims 128,512 --threads 1,2
    python bench/bench_reachability.py --sizes 1000000 --dims 512 --threads 2

Writes the ``index_reachability`` section of BENCHMARKS.md (``--no-write`` to only print).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(REPO))

from bench.bench_index import (  # noqa: E402
    recall_at_1,
    sweep_data,
    sweep_truth,
)
from bench.report import command, percentile, write_section  # noqa: E402
from facerec.storage.hnsw_index import HnswIndex  # noqa: E402
from facerec.storage.index_builds import configured_hnsw  # noqa: E402
from facerec.storage.index_options import IndexOptions  # noqa: E402
from facerec.storage.models import EmbeddingSpace  # noqa: E402
from facerec.storage.orphans import Orphans, unreachable  # noqa: E402
from facerec.values import Metric  # noqa: E402

PER_ID = 4


@dataclass
class Result:
    size: int
    dim: int
    data: str
    graph: str
    threads: int
    build_s: float
    check_s: float
    orphans: int
    lost_ids: int
    recall_with: float
    recall_without: float
    own_with: float
    own_without: float
    p50_with: float
    p50_without: float
    load1: float
    command: str = ""


def gallery(kind: str, size: int, dim: int, queries: int) -> tuple[NDArray[np.float32], ...]:
    """``clustered``: ``sweep_data``'s (about 0.7 cosine within an identity); ``tight``: the
    same with each identity's faces 10x closer together (near-identical photos)."""
    data, qs = sweep_data("clustered", size, dim, PER_ID, queries)
    if kind == "tight":
        ids = np.arange(size) // PER_ID
        for start in range(0, size, 100_000):
            block = slice(start, min(size, start + 100_000))
            first = data[(ids[block] * PER_ID)]  # each identity's first face as its centre
            data[block] = first + np.float32(0.1) * (data[block] - first)
    return data, qs


def measure(kind: str, size: int, dim: int, threads: int, n_queries: int) -> Result:
    data, qs = gallery(kind, size, dim, n_queries)
    metric: Metric = "cosine" if dim > 128 else "l2"
    options = replace(IndexOptions(), build_threads=threads)
    index = configured_hnsw(options, EmbeddingSpace(f"bench@{dim}", dim, metric))
    ids = [f"{i:032x}" for i in range(size)]
    started = time.perf_counter()
    index.add(ids, data)
    build = time.perf_counter() - started
    keys = np.array([index._keys[face_id] for face_id in ids], np.uint64)
    started = time.perf_counter()
    unreachable(
        index._index,
        keys,
        index._graph_rows(data),
        index.candidate_count(2),
        threads,
        private=True,
    )
    check = time.perf_counter() - started
    index.threads = 1
    orphan_rows = np.sort(index._orphans.keys.astype(np.int64))  # keys are row numbers here
    per_id = np.bincount(orphan_rows // PER_ID, minlength=size // PER_ID)
    full, empty = index._orphans, Orphans(dim, metric)

    def search(orphans: Orphans) -> Callable[[NDArray[np.float32]], int]:
        def top(q: NDArray[np.float32]) -> int:
            index._orphans = orphans
            return int(index.search(q, 1)[0][0], 16)

        return top

    t_with, t_without = alternating(search(full), search(empty), qs)
    f_with = [search(full)(q) for q in qs]
    f_without = [search(empty)(q) for q in qs]
    truth = sweep_truth(data, qs, metric)

    def recall(found: list[int]) -> float:
        return recall_at_1(data, qs, found, truth, metric)

    def own(orphans: Orphans) -> float:
        if not len(orphan_rows):
            return 1.0
        top = search(orphans)
        return float(np.mean([top(data[row]) == row for row in orphan_rows]))

    result = Result(
        size,
        dim,
        kind,
        graph_name(index, metric),
        threads,
        build,
        check,
        len(orphan_rows),
        int(np.count_nonzero(per_id == PER_ID)),
        recall(f_with),
        recall(f_without),
        own(full),
        own(empty),
        percentile(t_with, 50),
        percentile(t_without, 50),
        os.getloadavg()[0],
        command(),
    )
    index._orphans = full
    print(json.dumps(asdict(result)), flush=True)
    return result


def alternating(
    first: Callable[[NDArray[np.float32]], int],
    second: Callable[[NDArray[np.float32]], int],
    qs: NDArray[np.float32],
) -> tuple[list[float], list[float]]:
    """Milliseconds of ``first`` on the even queries and ``second`` on the odd ones, taking
    turns: each query is searched once, as a request would (a second search of the same query
    would find the nodes the first visited in cache and look several times faster)."""
    times: tuple[list[float], list[float]] = ([], [])
    for q in qs[:20]:  # warm up
        first(q)
        second(q)
    for i, q in enumerate(qs[20:]):
        search = first if i % 2 == 0 else second
        t0 = time.perf_counter_ns()
        search(q)
        times[i % 2].append((time.perf_counter_ns() - t0) / 1e6)
    return times


def graph_name(index: HnswIndex, metric: str) -> str:
    name = f"{index.dtype} {metric}"
    if index.projection is not None:
        name += f" on {index.projection.shape[1]} of {index.dim} directions"
    return name + f", M {index.connectivity}"


def write(results: list[Result], args: argparse.Namespace) -> None:
    table = [
        "| faces | dim | data | graph | build threads | build s | check s | orphans | identities"
        " lost without the list | recall@1 with / without | orphans' own vector found with /"
        " without | p50 ms with / without | load avg |",
        "|---:|---:|---|---|---:|---:|---:|---:|---:|---|---|---|---:|",
    ] + [
        f"| {r.size:,} | {r.dim} | {r.data} | {r.graph} | {r.threads} | {r.build_s:.1f} | "
        f"{r.check_s:.1f} ({r.check_s / r.build_s:.0%}) | {r.orphans} "
        f"({r.orphans / r.size:.3%}) | {r.lost_ids} | {r.recall_with:.4f} / "
        f"{r.recall_without:.4f} | {r.own_with:.3f} / {r.own_without:.3f} | "
        f"{r.p50_with:.3f} / {r.p50_without:.3f} | {r.load1:.1f} |"
        for r in results
    ]
    body = (
        f"`HnswIndex` built as the service builds it (M, ef_construction, ef and graph type "
        "from `IndexOptions`; rows whose graph names no M were built with M 16, the default "
        f"then); {PER_ID} faces per identity; `clustered`: about 0.7 cosine "
        "between faces of one identity (`bench_index.sweep_data`), `tight`: 10x closer "
        "(near-identical photos: bursts, video frames). orphans: faces a search of the graph "
        "for their own vector does not return, kept in the exact orphan list "
        "(`storage/orphans.py`); identities lost: identities all of whose faces are orphans. "
        "check s: the build's self-search of every face, timed again on its own (share of the "
        f"build). recall@1: {args.queries} new faces of enrolled identities whose top face is as "
        "near as the exact nearest, with the orphan list and graph only; orphans' own vector: "
        "share of orphans found first by their own vector; p50: one k=1 search on one thread, "
        "with the list on every other query, graph only on the rest, each query searched once "
        "(a repeated query finds its nodes in cache). load avg: 1-minute load "
        "average after the row "
        f"({os.cpu_count()} CPUs, shared). Rows of several runs are merged (`--rows-json`); "
        "they came from:\n\n"
        + "\n".join(f"- `{c}`" for c in dict.fromkeys(r.command for r in results if r.command))
        + "\n\n"
        + "\n".join(table)
    )
    if args.no_write:
        print(body)
    else:
        write_section("index_reachability", "HNSW faces the graph cannot find (orphans)", body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--dims", default="128,512")
    parser.add_argument("--data", default="clustered,tight")
    parser.add_argument("--threads", default="1,2", help="build threads to compare")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--rows-json", help="rows kept across runs (so 1M can run on its own)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    saved = Path(args.rows_json) if args.rows_json else None
    results = (
        [Result(**r) for r in json.loads(saved.read_text())] if saved and saved.exists() else []
    )
    for size in (int(s) for s in args.sizes.split(",") if s):
        for dim in (int(d) for d in args.dims.split(",")):
            for kind in args.data.split(","):
                for threads in (int(t) for t in args.threads.split(",")):
                    new = measure(kind, size, dim, threads, args.queries)
                    results = [
                        r
                        for r in results
                        if (r.size, r.dim, r.data, r.threads) != (size, dim, kind, threads)
                    ] + [new]
                    if saved:
                        saved.write_text(json.dumps([asdict(r) for r in results]))
                    gc.collect()
    write(results, args)


if __name__ == "__main__":
    main()
