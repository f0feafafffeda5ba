"""The projection's checks, exact ties only against near ties (``projection.TIE``), side by side.

Before a 512-D cosine gallery's graph runs on its principal directions, two checks ask whether
the projection keeps the gallery's neighbourhoods, using each sampled face's nearest other face
as the answer an identification looks for. In a gallery of one face per person that face is a
stranger among many at about the same similarity. Both graphs here are built as the service
builds them (``IndexOptions`` defaults) from the same gallery, one with the checks counting
exact ties only (as before ``TIE``), one as configured; then ``--queries`` new photos of
enrolled persons are searched at every ef of a grid (k=1, one thread, the graphs taking turns
on every query): recall@1 (as near as the exact nearest) and p50.

    python bench/bench_projection_check.py --data spread --size 200000 --faces-per-id 1

Writes the ``projection_check`` section of BENCHMARKS.md (``--no-write``: only print it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(REPO))

from bench.bench_connectivity import ef_rows, graph_name  # noqa: E402
from bench.bench_index import (  # noqa: E402
    sweep_data,
    sweep_truth,
)
from bench.report import write_section  # noqa: E402
from facerec.storage import projection  # noqa: E402
from facerec.storage.hnsw_index import HnswIndex  # noqa: E402
from facerec.storage.index_builds import configured_hnsw  # noqa: E402
from facerec.storage.index_options import IndexOptions  # noqa: E402
from facerec.storage.models import EmbeddingSpace  # noqa: E402

EFS = (16, 24, 32, 48, 64, 96)
EXACT_TIES = 1e-6  # what the checks counted before projection.TIE


def built(tie: float, data: object, ids: list[str]) -> tuple[HnswIndex, float]:
    configured = projection.TIE
    projection.TIE = tie
    try:
        index = configured_hnsw(IndexOptions(), EmbeddingSpace("bench@512", 512, "cosine"))
        started = time.perf_counter()
        index.add(ids, data)  # type: ignore[arg-type]
        seconds = time.perf_counter() - started
    finally:
        projection.TIE = configured
    index.threads = 1
    print(f"checks at tie {tie:g}: {seconds:.0f} s, graph {graph_name(index)}", flush=True)
    return index, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="spread", choices=("clustered", "spread"))
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--faces-per-id", type=int, default=1)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()
    data, qs = sweep_data(args.data, args.size, 512, args.faces_per_id, args.queries)
    truth = sweep_truth(data, qs, "cosine")
    ids = [f"{i:032x}" for i in range(len(data))]
    graphs = [
        (label, *built(tie, data, ids))
        for label, tie in (
            ("exact ties only", EXACT_TIES),
            (f"within {projection.TIE}", projection.TIE),
        )
    ]
    rows = ef_rows([(label, index) for label, index, _ in graphs], EFS, data, qs, truth)
    summary = ["| checks count | build s | graph | orphans | MB |", "|---|---:|---|---:|---:|"] + [
        f"| {label} | {seconds:.0f} | {graph_name(index)} | {index.orphans} | "
        f"{index.memory_bytes() / 2**20:.0f} |"
        for label, index, seconds in graphs
    ]
    body = (
        f"- gallery: {args.size:,} synthetic 512-D faces, `{args.data}` "
        f"(`bench_index.sweep_data`), {args.faces_per_id} face(s) per person; each graph built as "
        "the service builds it (default `IndexOptions`: M 32, i8, up to 128 directions, "
        "2 build threads), the checks counting exact ties only or near ties "
        f"(`projection.TIE` = {projection.TIE}).\n"
        f"- {args.queries} queries, new photos of enrolled persons; recall@1: the face found is as "
        "near as the exact nearest; one k=1 search per query and graph on one thread, taking "
        "turns on every query.\n"
        f"- load average (1 / 5 / 15 min) before: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; "
        f"after: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs, shared).\n\n"
        + "\n".join(summary)
        + "\n\n| checks count | ef | recall@1 | p50 ms |\n|---|---:|---:|---:|\n"
        + "\n".join(rows)
    )
    if args.no_write:
        print(body)
    else:
        write_section(
            "projection_check",
            "The projection's checks: exact ties only against near ties, side by side",
            body,
        )


if __name__ == "__main__":
    main()
