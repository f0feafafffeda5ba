"""What a recognize's search costs, and why it is not narrower.

A recognize asks the index for its ``top_k + 5`` nearest persons (10 by default), each then
scored again from all its faces; the nearest person and the margin to the next make the open-set
decision. ``shards.best_persons`` asks the index for ``max(4k, 16)`` faces (40 for 10 persons),
and an i8 / projected graph re-ranks ``rescore`` (4) graph candidates per face exactly
(``HnswIndex.candidate_count``): 160 candidates, so the graph walks at least that wide, far
wider than a k=1 search (9 candidates, the index sweeps' figures). Side by side on one graph
(one thread; each rule over all the queries in turn, twice, the second time in reverse order),
the service's rule, narrower ones, and wider ones:

- *service*: ``max(4k, 16)`` faces, each re-ranked over 4 candidates;
- *head 24*: the same faces, but only the first 24 re-ranked over 4, the rest over one;
- *2k+8 faces*: fewer faces, each re-ranked over 4;
- *k faces*: as many faces as persons (k=1: the one-face search the index sweeps time);
- *service, ef N*: the service's rule on a graph searched wider than its 160 candidates
  (``HNSW_EXPANSION_SEARCH=N``), for the runner-up persons.

Per rule and k (persons asked for): p50 of the search and how often its first 1, 2, 5 and 10
persons are as near as exact search's, place by place (within 0.01 cosine: among strangers at
near-equal distances, which comes first is noise). Galleries: ``bench_index.sweep_data`` ``spread``,
512-D, with ``--per-id`` faces per identity.

    python bench/bench_search_width.py --size 1000000 --per-id 4

Writes the ``search_width`` section of BENCHMARKS.md (``--no-write``: only print it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(REPO))

from bench.bench_connectivity import graph_name  # noqa: E402
from bench.bench_index import sweep_data  # noqa: E402
from bench.report import percentile, write_section  # noqa: E402
from facerec.storage.hnsw_index import HnswIndex  # noqa: E402
from facerec.storage.index_builds import configured_hnsw  # noqa: E402
from facerec.storage.index_options import IndexOptions  # noqa: E402
from facerec.storage.models import EmbeddingSpace, SearchHit, best_per_person  # noqa: E402
from facerec.storage.shards import Shard, best_persons, exact_index  # noqa: E402

KS = (1, 10)  # a duplicate check or a k=1 caller; a recognize's default top_k 5 + 5
WIDER = (256, 400)  # ef of the service's rule searched wider
PREFIXES = (1, 2, 5, 10)  # the decision (nearest; margin to the next), shown (top_k 5), all
# A person found at a place counts as exact search's when this near (cosine distance) to the one
# exact search has there: among strangers at near-equal distances, which comes first is noise;
# a margin measured against the second person is off by at most this much.
TIE = 0.01
Rule = Callable[[Shard, NDArray[np.float32], int], list[SearchHit]]


def width(index: HnswIndex, faces: int, head: int | None) -> int:
    """Graph candidates for ``faces`` faces: the index's own count, or with only the first
    ``head`` faces re-ranked over 4 candidates and the rest over one."""
    wide = HnswIndex.candidate_count(index, faces)
    return wide if head is None else min(wide, faces + 3 * min(faces, head))


def narrower(faces: Callable[[int], int], head: int | None) -> Rule:
    """``best_persons`` asking for ``faces(k)`` faces, with ``width(..., head)`` candidates."""

    def search(shard: Shard, query: NDArray[np.float32], k: int) -> list[SearchHit]:
        index = shard.index
        assert isinstance(index, HnswIndex)
        index.candidate_count = lambda n: width(index, n, head)  # type: ignore[method-assign,assignment]
        fetch = faces(k)
        try:
            while True:
                ids, distances = index.search(query, fetch)
                hits = best_per_person(
                    (shard.owners[f], f, float(d)) for f, d in zip(ids, distances, strict=True)
                )
                if len(hits) >= k or len(ids) < fetch:
                    return hits[:k]
                fetch *= 4
        finally:
            del index.candidate_count  # (the class's again)

    return search


def searched_at(ef: int) -> Rule:
    """The service's rule with the graph's ``expansion_search`` at ``ef`` for the search."""

    def search(shard: Shard, query: NDArray[np.float32], k: int) -> list[SearchHit]:
        index = shard.index
        assert isinstance(index, HnswIndex)
        configured = index.expansion_search
        index.expansion_search = ef
        try:
            return best_persons(shard, query, k)
        finally:
            index.expansion_search = configured

    return search


def measure(
    rules: dict[str, Rule], shard: Shard, truth: list[list[float]], qs: NDArray[np.float32], k: int
) -> dict[str, tuple[float, list[float]]]:
    """Per rule: (p50 ms, per prefix of :data:`PREFIXES`: share of queries whose first persons
    are each as near as exact search's at their place, within :data:`TIE`). The rules share one
    graph: a rule run on queries another has just searched finds their paths in cache, so each
    runs over all the queries before the next starts (at 1M their paths are far larger than the
    cache), twice, the second time in reverse order."""
    times: dict[str, list[float]] = {name: [] for name in rules}
    same: dict[str, list[int]] = {name: [0] * len(PREFIXES) for name in rules}
    for rep in range(2):
        for name in list(rules) if rep == 0 else list(rules)[::-1]:
            rule = rules[name]
            for query, wanted in zip(qs, truth, strict=True):
                started = time.perf_counter_ns()
                hits = rule(shard, query, k)
                times[name].append((time.perf_counter_ns() - started) / 1e6)
                if rep == 0:
                    near = [
                        h.distance <= exact + TIE for h, exact in zip(hits, wanted, strict=False)
                    ] + [False] * (k - len(hits))
                    for i, prefix in enumerate(PREFIXES):
                        same[name][i] += all(near[:prefix])
    return {
        name: (percentile(times[name], 50), [n / len(qs) for n in same[name]]) for name in rules
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--per-id", type=int, default=4)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()
    data, qs = sweep_data("spread", args.size, 512, args.per_id, args.queries)
    ids = [f"{i:032x}" for i in range(len(data))]
    owners = {face: f"p{i // args.per_id}" for i, face in enumerate(ids)}
    space = EmbeddingSpace("bench@512", 512, "cosine")
    # Exact answers first, and no exact copy beside the graph while it is timed.
    exact = exact_index(space, len(ids))
    exact.add(ids, data)
    exact_shard = Shard(space, exact, dict(owners))
    truths = {k: [[h.distance for h in best_persons(exact_shard, q, k)] for q in qs] for k in KS}
    del exact, exact_shard
    started = time.perf_counter()
    graph = configured_hnsw(IndexOptions(), space)
    graph.add(ids, data)
    graph.threads = 1
    del data
    print(f"graph built in {time.perf_counter() - started:.0f} s: {graph_name(graph)}", flush=True)
    shard = Shard(space, graph, owners)
    rules: dict[str, tuple[Rule, Callable[[int], int], int | None]] = {
        "service": (best_persons, lambda k: max(4 * k, 16), None),
        "head 24": (narrower(lambda k: max(4 * k, 16), 24), lambda k: max(4 * k, 16), 24),
        "2k+8 faces": (narrower(lambda k: 2 * k + 8, None), lambda k: 2 * k + 8, None),
        "k faces": (narrower(lambda k: k, None), lambda k: k, None),
    } | {f"service, ef {ef}": (searched_at(ef), lambda k: max(4 * k, 16), None) for ef in WIDER}
    rows = []
    for k in KS:
        found = measure(
            {name: rule for name, (rule, _, _) in rules.items()}, shard, truths[k], qs, k
        )
        for name, (p50, agree) in found.items():
            _, faces, head = rules[name]
            candidates = width(graph, faces(k), head)
            shares = " | ".join(
                f"{share:.4f}" if prefix <= k else ""
                for prefix, share in zip(PREFIXES, agree, strict=True)
            )
            rows.append(f"| {k} | {name} | {faces(k)} | {candidates} | {p50:.3f} | {shares} |")
            print(rows[-1], flush=True)
    body = (
        f"- gallery: {args.size:,} synthetic 512-D faces, `spread` (`bench_index.sweep_data`), "
        f"{args.per_id} per identity; graph as the service builds it ({graph_name(graph)}, "
        f"M {graph.connectivity}, ef {graph.expansion_search}, {graph.orphans} orphans).\n"
        f"- {args.queries} queries, new faces of enrolled identities; one thread, the rules "
        "each over all the queries in turn, twice, the second time in reverse order (rules "
        "searching the same queries back to back would find each other's paths in cache); "
        "*first n as exact*: share of queries "
        "whose first n persons are each within 0.01 cosine of exact search's at the same place "
        "(1 and 2 make the decision: the nearest person and the margin to the next; 5 are shown "
        "by default).\n"
        f"- load average (1 / 5 / 15 min) before: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}\n\n"
        "| persons asked (k) | rule | faces asked | graph candidates | p50 ms | first 1 as exact "
        "| first 2 | first 5 | all 10 |\n"
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n"
    )
    print(body)
    if not args.no_write:
        write_section("search_width", "A recognize's search: persons, faces, candidates", body)


if __name__ == "__main__":
    main()
