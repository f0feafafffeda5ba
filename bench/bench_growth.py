"""A gallery that grows past the HNSW threshold: its graph kept as first built, or rebuilt.

The service builds a gallery's HNSW graph when it passes ``HNSW_THRESHOLD`` (20,000 faces) and
adds later faces to it one batch at a time. Both graphs here go that way, from the same
gallery (``bench_index.sweep_data``, identities of 4 faces, enrolled in random order) in
batches of ``--batch`` faces, through the service's own ``IndexBuilds``:

- *kept*: ``HNSW_REBUILD_GROWTH=0``, the graph built at the threshold takes every later face
  (the service before graphs were rebuilt);
- *rebuilt*: the default growth of 2, a graph grown to twice the faces it was built with is
  built again (here each rebuild is awaited before the next batch; the service keeps answering
  from the old graph meanwhile).

Then each is searched for ``--queries`` new faces of enrolled identities at every ef of a
grid (k=1, one thread, the two graphs taking turns on every query): recall@1 (as near as the
exact nearest) and p50.

    python bench/bench_growth.py --data spread --start 20000 --size 200000

Writes the ``index_growth_<data>`` section of BENCHMARKS.md (``--no-write``: only print it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(REPO))

from bench.bench_connectivity import ef_rows, graph_name, size_label  # noqa: E402
from bench.bench_index import (  # noqa: E402
    sweep_data,
    sweep_truth,
)
from bench.report import write_section  # noqa: E402
from facerec.storage.hnsw_index import HnswIndex  # noqa: E402
from facerec.storage.index_builds import IndexBuilds  # noqa: E402
from facerec.storage.index_options import IndexOptions  # noqa: E402
from facerec.storage.models import EmbeddingSpace  # noqa: E402
from facerec.storage.shards import Shard  # noqa: E402

EFS = (16, 24, 32, 48, 64, 96)
KEY = ("bench", "bench@512")


@dataclass
class Grown:
    label: str
    index: HnswIndex
    seconds: float  # the first build, every add and every rebuild
    rebuilds: list[tuple[int, float]]  # (faces, seconds) of each rebuild


async def grown(
    label: str,
    growth: float,
    data: NDArray[np.float32],
    ids: list[str],
    start: int,
    batch: int,
    threads: int,
) -> Grown:
    """Built at ``start`` faces as the service builds a graph, then the rest added ``batch``
    at a time, each add followed by the service's check for a rebuild."""
    options = replace(IndexOptions(), rebuild_growth=growth, build_threads=threads)
    space = EmbeddingSpace(KEY[1], data.shape[1], "cosine")
    shards: dict[tuple[str, str], Shard] = {}
    builds = IndexBuilds(None, options, shards, asyncio.Lock())  # type: ignore[arg-type]
    started = time.perf_counter()
    shards[KEY] = Shard(space, builds.hnsw_from(space, ids[:start], data[:start]), {})
    rebuilds = []
    for at in range(start, len(ids), batch):
        shards[KEY].index.add(ids[at : at + batch], data[at : at + batch])
        builds.maybe_upgrade(KEY)
        if builds._tasks:
            began = time.perf_counter()
            await builds.wait()
            rebuilds.append((len(shards[KEY].index), time.perf_counter() - began))
    index = shards[KEY].index
    assert isinstance(index, HnswIndex)
    seconds = time.perf_counter() - started
    print(
        f"{label}: {seconds:.0f} s, graph {graph_name(index)}, {index.orphans} orphans, "
        f"rebuilt at {[faces for faces, _ in rebuilds]}",
        flush=True,
    )
    return Grown(label, index, seconds, rebuilds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="spread", choices=("clustered", "spread"))
    parser.add_argument("--start", type=int, default=20_000, help="faces at the first build")
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5_000, help="faces per later add")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2, help="build threads")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()
    data, qs = sweep_data(args.data, args.size, 512, 4, args.queries)
    data = data[np.random.default_rng(1).permutation(len(data))]  # enrolled in any order
    truth = sweep_truth(data, qs, "cosine")
    ids = [f"{i:032x}" for i in range(len(data))]
    graphs = [
        asyncio.run(grown(label, growth, data, ids, args.start, args.batch, args.threads))
        for label, growth in (("kept", 0.0), ("rebuilt", 2.0))
    ]
    for graph in graphs:
        graph.index.threads = 1
    rows = ef_rows([(g.label, g.index) for g in graphs], EFS, data, qs, truth)
    summary = [
        "| graph | growth | build + adds + rebuilds s | rebuilt at (faces, s) | graph at the end "
        "| orphans | MB |",
        "|---|---:|---:|---|---|---:|---:|",
    ] + [
        f"| {g.label} | {'never' if g.label == 'kept' else 2} | {g.seconds:.0f} | "
        + (", ".join(f"{faces:,} ({s:.0f} s)" for faces, s in g.rebuilds) or "-")
        + f" | {graph_name(g.index)} | {g.index.orphans} | {g.index.memory_bytes() / 2**20:.0f} |"
        for g in graphs
    ]
    body = (
        f"- gallery: {args.size:,} synthetic 512-D faces, `{args.data}` (`bench_index.sweep_data`: "
        "identities of 4 faces), enrolled in random order; the graph built at "
        f"{args.start:,} faces, then {args.batch:,} faces per add, through the service's "
        f"`IndexBuilds` ({args.threads} build threads, the default graph settings).\n"
        f"- {args.queries} queries, new faces of enrolled identities; recall@1: the face found "
        "is as near as the exact nearest; one k=1 search per query and graph on one thread, "
        "taking turns on every query.\n"
        f"- load average (1 / 5 / 15 min) before: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; "
        f"after: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs, shared).\n\n"
        + "\n".join(summary)
        + "\n\n| graph | ef | recall@1 | p50 ms |\n|---|---:|---:|---:|\n"
        + "\n".join(rows)
    )
    if args.no_write:
        print(body)
    else:
        write_section(
            f"index_growth_{args.data}",
            f"A growing gallery: the HNSW graph kept as first built, or rebuilt as it grows "
            f"({args.data}, {size_label(args.start)} to {size_label(args.size)} faces)",
            body,
        )


if __name__ == "__main__":
    main()
