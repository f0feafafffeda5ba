"""1:N vector search: latency, recall@1 vs exact, build time and memory per index kind.

Synthetic gallery like real face embeddings: ``n / faces_per_id`` identities, each a centre on
the unit sphere (drawn partly from a 32-D subspace, so identities crowd like real faces do) and
``faces_per_id`` enrolled samples with noise (~0.35 from the centre, dlib-like scale). Queries
are new noisy samples of enrolled identities. recall@1 = share of queries whose top face equals
the exact top face.

    python bench/bench_index.py --sizes 10000,100000          # quick
    python bench/bench_index.py --sizes 1000000 --methods exact,usearch,hnswlib

Writes the ``index`` section of BENCHMARKS.md (``--no-write`` to only print).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import psutil
from numpy.typing import NDArray

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(REPO))

from bench.report import BENCHMARKS, percentile, write_section  # noqa: E402
from facerec.storage.vector_index import ExactIndex, HnswIndex  # noqa: E402

DIM = 128
NOISE = 0.35 / np.sqrt(DIM)
ALL_METHODS = ("exact", "usearch", "hnswlib", "faiss", "pgvector", "registry")


@dataclass
class Row:
    size: int
    method: str
    params: str
    build_s: float
    memory_mb: float
    p50_ms: float
    p95_ms: float
    recall: float


def gallery(n: int, per_id: int, seed: int = 0) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    n_ids = max(1, n // per_id)
    centres = np.empty((n_ids, DIM), np.float32)
    basis = rng.standard_normal((32, DIM)).astype(np.float32)
    for start in range(0, n_ids, 100_000):
        m = min(100_000, n_ids - start)
        block = rng.standard_normal((m, 32)).astype(np.float32) @ basis / np.sqrt(32)
        block += 0.5 * rng.standard_normal((m, DIM)).astype(np.float32)
        centres[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    owners = np.repeat(np.arange(n_ids), per_id)[:n]
    data = centres[owners] + NOISE * rng.standard_normal((n, DIM)).astype(np.float32)
    return data.astype(np.float32), owners


def queries(
    data: NDArray[np.float32], owners: NDArray[np.int64], count: int, seed: int = 1
) -> NDArray[np.float32]:
    """New samples of enrolled identities: identity centre (mean of its faces) + fresh noise."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(data), count)
    same = [np.flatnonzero(owners == owners[p]) for p in picks]
    centres = np.stack([data[s].mean(0) for s in same])
    return (centres + NOISE * rng.standard_normal((count, DIM))).astype(np.float32)


def exact_top1(data: NDArray[np.float32], qs: NDArray[np.float32]) -> NDArray[np.int64]:
    best = np.full(len(qs), -1, np.int64)
    best_d = np.full(len(qs), np.inf, np.float32)
    q_norm = (qs * qs).sum(1)
    for start in range(0, len(data), 50_000):
        block = data[start : start + 50_000]
        d = (block * block).sum(1)[None, :] - 2.0 * qs @ block.T + q_norm[:, None]
        idx = d.argmin(1)
        val = d[np.arange(len(qs)), idx]
        better = val < best_d
        best[better] = idx[better] + start
        best_d[better] = val[better]
    return best


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def timed(
    search: Callable[[NDArray[np.float32]], int], qs: NDArray[np.float32]
) -> tuple[list[float], list[int]]:
    return timed_side_by_side([search], qs)[0]


def timed_side_by_side(
    searches: list[Callable[[NDArray[np.float32]], int]], qs: NDArray[np.float32]
) -> list[tuple[list[float], list[int]]]:
    """Milliseconds and answers of each search per query, the searches taking turns on every
    query (so a noisy neighbour slows them alike)."""
    for q in qs[:20]:  # warm caches
        for search in searches:
            search(q)
    results: list[tuple[list[float], list[int]]] = [([], []) for _ in searches]
    for q in qs:
        for search, (times, found) in zip(searches, results, strict=True):
            t0 = time.perf_counter_ns()
            found.append(search(q))
            times.append((time.perf_counter_ns() - t0) / 1e6)
    return results


def row(
    size: int,
    method: str,
    params: str,
    build: float,
    mem: float,
    times: list[float],
    found: list[int],
    truth: NDArray[np.int64],
) -> Row:
    recall = float(np.mean(np.asarray(found) == truth[: len(found)]))
    result = Row(
        size, method, params, build, mem, percentile(times, 50), percentile(times, 95), recall
    )
    print(
        f"  {method:9s} {params:28s} build {build:7.1f}s mem {mem:7.0f}MB "
        f"p50 {result.p50_ms:7.3f}ms p95 {result.p95_ms:7.3f}ms recall@1 {recall:.4f}",
        flush=True,
    )
    return result


def bench_exact(
    size: int, data: NDArray[np.float32], qs: NDArray[np.float32], truth: NDArray[np.int64]
) -> list[Row]:
    before = rss_mb()
    t0 = time.perf_counter()
    index = ExactIndex(DIM, "l2", capacity=size)
    index.add([str(i) for i in range(size)], data)
    build = time.perf_counter() - t0
    mem = rss_mb() - before
    n = min(len(qs), 200 if size >= 1_000_000 else 500)
    times, found = timed(lambda q: int(index.search(q, 1)[0][0]), qs[:n])
    return [row(size, "exact", "numpy brute force", build, mem, times, found, truth)]


EFS = (16, 24, 32, 48, 64, 128)


def bench_usearch(
    size: int,
    data: NDArray[np.float32],
    qs: NDArray[np.float32],
    truth: NDArray[np.int64],
    threads: int,
) -> list[Row]:
    before = rss_mb()
    t0 = time.perf_counter()
    index = HnswIndex(DIM, "l2", connectivity=16, expansion_add=128, threads=threads)
    index.add([str(i) for i in range(size)], data)
    build = time.perf_counter() - t0
    mem = rss_mb() - before
    rows = []
    for ef in EFS:
        index.expansion_search = ef
        times, found = timed(lambda q: int(index.search(q, 1)[0][0]), qs)
        rows.append(row(size, "usearch", f"M=16 efC=128 ef={ef}", build, mem, times, found, truth))
    return rows


def bench_hnswlib(
    size: int,
    data: NDArray[np.float32],
    qs: NDArray[np.float32],
    truth: NDArray[np.int64],
    threads: int,
) -> list[Row]:
    import hnswlib

    before = rss_mb()
    t0 = time.perf_counter()
    index = hnswlib.Index(space="l2", dim=DIM)
    index.init_index(max_elements=size, M=16, ef_construction=128, allow_replace_deleted=True)
    index.add_items(data, np.arange(size), num_threads=threads)
    build = time.perf_counter() - t0
    mem = rss_mb() - before
    index.set_num_threads(1)
    rows = []
    for ef in EFS:
        index.set_ef(ef)
        times, found = timed(lambda q: int(index.knn_query(q, k=1)[0][0, 0]), qs)
        rows.append(row(size, "hnswlib", f"M=16 efC=128 ef={ef}", build, mem, times, found, truth))
    return rows


def bench_faiss(
    size: int,
    data: NDArray[np.float32],
    qs: NDArray[np.float32],
    truth: NDArray[np.int64],
    threads: int,
) -> list[Row]:
    import faiss

    faiss.omp_set_num_threads(threads)
    before = rss_mb()
    t0 = time.perf_counter()
    index = faiss.IndexHNSWFlat(DIM, 16)
    index.hnsw.efConstruction = 128
    index.add(data)
    build = time.perf_counter() - t0
    mem = rss_mb() - before
    faiss.omp_set_num_threads(1)
    rows = []
    for ef in EFS:
        index.hnsw.efSearch = ef
        times, found = timed(lambda q: int(index.search(q[None, :], 1)[1][0, 0]), qs)
        rows.append(
            row(size, "faiss", f"M=16 efC=128 ef={ef} (no delete)", build, mem, times, found, truth)
        )
    return rows


def bench_pgvector(
    size: int,
    data: NDArray[np.float32],
    qs: NDArray[np.float32],
    truth: NDArray[np.int64],
    threads: int,
) -> list[Row]:
    return asyncio.run(_pgvector(size, data, qs, truth, threads))


async def _pgvector(
    size: int,
    data: NDArray[np.float32],
    qs: NDArray[np.float32],
    truth: NDArray[np.int64],
    threads: int,
) -> list[Row]:
    import asyncpg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    from facerec.storage.pgvector import vector_literal

    root = Path(tempfile.mkdtemp(prefix="facerec-bench-pg-"))
    server = pgserver.get_server(root, cleanup_mode="stop")
    try:
        server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
        conn = await asyncpg.connect(host=str(root), user="postgres", database="postgres")
        await conn.execute(
            "DROP TABLE IF EXISTS bench;"
            " CREATE TABLE bench (id int PRIMARY KEY, embedding vector(128))"
        )
        for start in range(0, size, 10_000):
            block = data[start : start + 10_000]
            await conn.executemany(
                "INSERT INTO bench VALUES ($1, $2::text::vector)",
                [(start + i, vector_literal(v)) for i, v in enumerate(block)],
            )
        await conn.execute("SET maintenance_work_mem = '2GB'")
        await conn.execute(f"SET max_parallel_maintenance_workers = {max(0, threads - 1)}")
        t0 = time.perf_counter()
        await conn.execute(
            "CREATE INDEX ON bench USING hnsw (embedding vector_l2_ops)"
            " WITH (m = 16, ef_construction = 128)"
        )
        build = time.perf_counter() - t0
        mem = float(await conn.fetchval("SELECT pg_relation_size('bench_embedding_idx')")) / 2**20
        statement = await conn.prepare(
            "SELECT id FROM bench ORDER BY embedding <-> $1::text::vector LIMIT 1"
        )
        rows = []
        literals = [vector_literal(q) for q in qs]
        for ef in (40, 64, 128):
            await conn.execute(f"SET hnsw.ef_search = {ef}")
            times: list[float] = []
            found: list[int] = []
            for lit in literals[:20]:
                await statement.fetchval(lit)
            for lit in literals:
                t = time.perf_counter_ns()
                found.append(int(await statement.fetchval(lit)))
                times.append((time.perf_counter_ns() - t) / 1e6)
            rows.append(
                row(
                    size,
                    "pgvector",
                    f"m=16 efC=128 ef={ef} (index MB)",
                    build,
                    mem,
                    times,
                    found,
                    truth,
                )
            )
        await conn.close()
        return rows
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def bench_registry(
    size: int,
    data: NDArray[np.float32],
    qs: NDArray[np.float32],
    truth: NDArray[np.int64],
    threads: int,
) -> list[Row]:
    return asyncio.run(_registry(size, data, qs, truth))


async def _registry(
    size: int, data: NDArray[np.float32], qs: NDArray[np.float32], truth: NDArray[np.int64]
) -> list[Row]:
    """End to end through IndexRegistry on SQLite: includes the per-search change-log check."""
    from facerec.config import Settings
    from facerec.storage import (
        EmbeddingSpace,
        IndexOptions,
        IndexRegistry,
        NewFace,
        NewPerson,
        SqlGalleryRepository,
        create_engine,
        upgrade_database,
    )

    root = Path(tempfile.mkdtemp(prefix="facerec-bench-db-"))
    settings = Settings(database_url=f"sqlite+aiosqlite:///{root / 'g.db'}")
    engine = create_engine(settings.db)
    try:
        await upgrade_database(settings, engine=engine)
        repo = SqlGalleryRepository(engine)
        await repo.ensure_space(EmbeddingSpace("bench@1", DIM, "l2"))
        per = 1000
        face_ids: dict[str, int] = {}
        for start in range(0, size, per):
            person = await repo.create_person(NewPerson(name=f"batch{start}"))
            added = await repo.add_faces(
                person.id,
                [NewFace(space="bench@1", embedding=v) for v in data[start : start + per]],
            )
            face_ids.update((f.id, start + i) for i, f in enumerate(added))
        registry = IndexRegistry(repo, IndexOptions(backend="memory", hnsw_threshold=20_000))
        t0 = time.perf_counter()
        await registry.search("default", "bench@1", qs[0], 1)
        build = time.perf_counter() - t0
        n = min(len(qs), 500)
        times: list[float] = []
        found: list[int] = []
        for q in qs[:n]:
            t = time.perf_counter_ns()
            hits = await registry.search("default", "bench@1", q, 1)
            times.append((time.perf_counter_ns() - t) / 1e6)
            found.append(face_ids[hits[0].face_id])
        kind = "exact" if size <= 20_000 else "usearch ef=64"
        return [row(size, "registry", f"SQLite + sync + {kind}", build, 0.0, times, found, truth)]
    finally:
        await engine.dispose()
        shutil.rmtree(root, ignore_errors=True)


CHOICE = """\
Choice: the service's HNSW is usearch (`facerec.storage.vector_index.HnswIndex`; compared here
at M=16, ef_construction=128; the service now builds M=32 graphs, searched at ef 64, see
index_connectivity_*). hnswlib answers about twice as fast at equal
recall, but it only marks deletions: an erased face's vector stays in memory and in every saved
index file. usearch really removes it (and `HnswIndex` overwrites the freed slot), is in the main
dependencies, and saves to one buffer. faiss HNSW cannot delete at all. Known cost: after
removals, usearch's next add looks for a free slot in O(n) (about 4 ms at 100k), paid once per
change by the next search of each process. pgvector was run up to 100k only (`--pgvector-max`)
to keep the run short; at 100k its index build took twice as long as usearch's."""

RUNNERS: dict[str, Callable[..., list[Row]]] = {
    "usearch": bench_usearch,
    "hnswlib": bench_hnswlib,
    "faiss": bench_faiss,
    "pgvector": bench_pgvector,
    "registry": bench_registry,
}


# ---- index sweep: 128-D and 512-D, f32 vs quantised graphs + exact re-rank, restart -----------

SWEEP_EFS = (16, 24, 32, 40, 48, 56, 64, 96, 128)
# "i8p128": i8 graph on the gallery's 128 principal directions (``HnswIndex(graph_dim=128)``)
SWEEP_GRAPHS = ("f32", "f16", "i8", "i8p128", "i8p96", "i8p64")


@dataclass
class SweepRow:
    size: int
    dim: int
    data: str
    graph: str
    ef: int
    build_s: float
    index_mb: float
    file_mb: float
    load_s: float
    mmap_s: float
    p50_ms: float
    p95_ms: float
    recall: float
    load1: float

    def key(self) -> tuple[int, int, str, str]:
        return (self.size, self.dim, self.data, self.graph)


def sweep_data(
    kind: str, n: int, dim: int, per_id: int, n_queries: int, seed: int = 0
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """``clustered``: identities on the unit sphere (partly from a 64-D subspace, so they crowd)
    with ``per_id`` faces each, ~0.7 cosine between two faces of one identity (ArcFace-like);
    queries are new faces of enrolled identities. ``spread``: the same, but the identities'
    energy falls off smoothly over all ``dim`` directions instead of sitting in a subspace.
    ``random``: Gaussian vectors and queries (the worst case for HNSW: every neighbour is nearly
    as far as the nearest)."""
    rng = np.random.default_rng(seed)
    if kind == "random":
        data = rng.standard_normal((n, dim), np.float32)
        return data, rng.standard_normal((n_queries, dim), np.float32)
    n_ids = max(1, n // per_id)
    if kind == "spread":
        # no subspace: identity energy falls off smoothly over every direction (1/sqrt(i)),
        # in a random orientation
        scales = np.arange(1, dim + 1, dtype=np.float32) ** np.float32(-0.5)
        rotation = np.linalg.qr(rng.standard_normal((dim, dim)))[0].astype(np.float32)
        centres = (rng.standard_normal((n_ids, dim), np.float32) * scales) @ rotation
    else:
        basis = rng.standard_normal((64, dim), np.float32) / np.float32(8.0)
        centres = rng.standard_normal((n_ids, 64), np.float32) @ basis
        centres += np.float32(0.7 / np.sqrt(dim)) * rng.standard_normal((n_ids, dim), np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = np.float32(0.65 / np.sqrt(dim))
    data = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        block = np.arange(start, min(n, start + 100_000)) // per_id % n_ids
        data[start : start + len(block)] = centres[block] + noise * rng.standard_normal(
            (len(block), dim), np.float32
        )
    picks = rng.integers(0, n_ids, n_queries)
    qs = centres[picks] + noise * rng.standard_normal((n_queries, dim), np.float32)
    return data, qs.astype(np.float32)


def exact_distances(
    data: NDArray[np.float32], qs: NDArray[np.float32], picks: NDArray[np.int64], metric: str
) -> NDArray[np.float64]:
    """Float64 distance of each query to its picked row (L2, or 1 - cos)."""
    rows = data[picks].astype(np.float64)
    q = qs.astype(np.float64)
    if metric == "l2":
        return np.asarray(np.linalg.norm(rows - q, axis=1), np.float64)
    cos = (rows * q).sum(1) / np.linalg.norm(rows, axis=1) / np.linalg.norm(q, axis=1)
    return np.asarray(1.0 - cos, np.float64)


def recall_at_1(
    data: NDArray[np.float32],
    qs: NDArray[np.float32],
    found: list[int],
    truth: NDArray[np.float64],
    metric: str,
) -> float:
    """Share of ``qs`` whose found row (``found``: row numbers) is as near as the exact nearest
    (``truth``, from :func:`sweep_truth`); ties within 1e-5 count as hits."""
    near = exact_distances(data, qs, np.asarray(found, np.int64), metric)
    return float(np.mean(near <= truth + 1e-5))


def identity_recall_at_1(found: list[int], nearest: NDArray[np.int64], per_id: int) -> float:
    """Share of queries whose found row (``found``) shows the identity of the exact nearest row
    (``nearest``, from :func:`sweep_nearest`): what a 1:N decision by person needs. Rows of
    :func:`sweep_data` come identity by identity, ``per_id`` each."""
    return float(np.mean(np.asarray(found, np.int64) // per_id == nearest // per_id))


def sweep_truth(
    data: NDArray[np.float32], qs: NDArray[np.float32], metric: str
) -> NDArray[np.float64]:
    """Exact nearest distance per query (see :func:`sweep_nearest`)."""
    return sweep_nearest(data, qs, metric).distance


class Nearest(NamedTuple):
    """The exact nearest row of each query and its float64 distance."""

    distance: NDArray[np.float64]
    row: NDArray[np.int64]


def sweep_nearest(data: NDArray[np.float32], qs: NDArray[np.float32], metric: str) -> Nearest:
    """Exact nearest distance and row per query: top 8 in float32, then decided in float64
    (float32 alone misranks near ties and would count a correct answer as a miss)."""
    unit_q = qs / np.linalg.norm(qs, axis=1, keepdims=True) if metric == "cosine" else qs
    cands = np.empty((len(qs), 0), np.int64)
    cand_d = np.empty((len(qs), 0), np.float32)
    for start in range(0, len(data), 50_000):
        block = data[start : start + 50_000]
        if metric == "cosine":
            d = -(unit_q @ block.T) / np.linalg.norm(block, axis=1)[None, :]
        else:
            d = (block * block).sum(1)[None, :] - 2.0 * qs @ block.T
        top = np.argpartition(d, 7, axis=1)[:, :8]
        cands = np.hstack([cands, top + start])
        cand_d = np.hstack([cand_d, np.take_along_axis(d, top, 1)])
        keep = np.argpartition(cand_d, 7, axis=1)[:, :8]
        cands = np.take_along_axis(cands, keep, 1)
        cand_d = np.take_along_axis(cand_d, keep, 1)
    exact = np.stack(
        [exact_distances(data, qs, cands[:, j], metric) for j in range(cands.shape[1])], 1
    )
    best = exact.argmin(1)
    rows = np.take_along_axis(cands, best[:, None], 1)[:, 0]
    return Nearest(np.asarray(exact.min(1), np.float64), np.asarray(rows, np.int64))


def sweep_config(
    size: int,
    kind: str,
    data: NDArray[np.float32],
    qs: NDArray[np.float32],
    truth: NDArray[np.float64],
    dtype: str,
    rescore: int,
    threads: int,
    expansion_add: int = 128,
    pages: str = "both",
    connectivity: int = 16,
) -> list[SweepRow]:
    """``pages``: the graph restored on 4 KiB pages (``4k``), collapsed into 2 MiB pages as the
    service does (``2m``), or both copies searched side by side (``both``)."""
    dim = data.shape[1]
    metric = "cosine" if dim > 128 else "l2"
    ids = [f"{i:032x}" for i in range(size)]  # uuid-sized face ids
    t0 = time.perf_counter()
    graph_dim = int(dtype.split("p")[1]) if "p" in dtype else 0
    scalar = dtype.split("p")[0]
    index = HnswIndex(
        dim,
        metric,
        threads=threads,
        dtype=scalar,  # type: ignore[arg-type]
        rescore=rescore,
        graph_dim=graph_dim,
        expansion_add=expansion_add,
        connectivity=connectivity,
    )
    index.add(ids, data)
    build = time.perf_counter() - t0
    index.threads = 1
    mem = index.memory_bytes() / 2**20
    root = Path(tempfile.mkdtemp(prefix="facerec-bench-idx-"))
    try:  # the snapshot carries the owners like the registry's (face id → person id)
        path = root / "s.hnsw"
        owners = {face_id: f"{i // 4:032x}" for i, face_id in enumerate(ids)}
        index.save(path, {"owners": owners})
        file_mb = path.stat().st_size / 2**20
        del index, owners
        gc.collect()
        loads: dict[tuple[bool, bool], float] = {}
        copies: dict[bool, HnswIndex] = {}
        for huge in {"4k": (False,), "2m": (True,), "both": (False, True)}[pages]:
            for mmap in (True, False):  # restart: read the snapshot, rebuild the person counts
                t0 = time.perf_counter()
                loaded, extra = HnswIndex.load_with_extra(path, mmap=mmap, huge_pages=huge)
                Counter(extra["owners"].values())
                loads[huge, mmap] = time.perf_counter() - t0
                if mmap:
                    del loaded, extra
                    gc.collect()
            copies[huge] = loaded
        index = loaded
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = []
    for ef in SWEEP_EFS:
        for copy in copies.values():
            copy.expansion_search = ef
        measured = timed_side_by_side([top_key(copy) for copy in copies.values()], qs)
        recalls = []
        for huge, (times, found) in zip(copies, measured, strict=True):
            recall = recall_at_1(data, qs, found, truth, metric)
            recalls.append(recall)
            row = sweep_row(dtype, rescore, expansion_add, index, huge, connectivity)
            result = SweepRow(
                size,
                dim,
                kind,
                row,
                ef,
                build,
                mem,
                file_mb,
                loads[huge, False],
                loads[huge, True],
                percentile(times, 50),
                percentile(times, 95),
                recall,
                os.getloadavg()[0],
            )
            print(
                f"  {dim}-D {kind} {row:26s} ef={ef:3d} build {build:6.1f}s {mem:6.0f}MB "
                f"load {result.load_s:5.2f}s mmap {result.mmap_s:5.2f}s "
                f"p50 {result.p50_ms:.3f}ms p95 {result.p95_ms:.3f}ms recall@1 {recall:.4f}",
                flush=True,
            )
            rows.append(result)
        if min(recalls) >= 0.9995 and ef >= 32:
            break  # larger ef only costs time
    return rows


def top_key(index: HnswIndex) -> Callable[[NDArray[np.float32]], int]:
    """A search of ``index`` answering the row number of the nearest face (its id in hex)."""
    return lambda q: int(index.search(q, 1)[0][0], 16)


def sweep_row(
    dtype: str, rescore: int, expansion_add: int, index: HnswIndex, huge: bool, connectivity: int
) -> str:
    """The graph column of a sweep row."""
    graph_dim = int(dtype.split("p")[1]) if "p" in dtype else 0
    scalar = dtype.split("p")[0]
    graph = dtype if dtype == "f32" else f"{dtype} + f32 re-rank of top {rescore}"
    if index.projection is not None:
        width = index.projection.shape[1]
        graph = (
            f"{scalar}p{graph_dim}: {scalar} on {width} principal directions"
            + (f" (narrowest of up to {graph_dim})" if width < graph_dim else "")
            + f" + f32 re-rank of top {index.candidate_count(1)}"
        )
    elif graph_dim:
        graph = (
            f"{scalar}p{graph_dim} refused by its self-check: {scalar} + f32 re-rank of "
            f"top {rescore}"
        )
    if connectivity != 16:
        graph += f", M {connectivity}"
    if expansion_add != 128:
        graph += f", efC {expansion_add}"
    return graph + (", 2 MiB pages" if huge else "")


def run_sweep(args: argparse.Namespace) -> None:
    """Rows accumulate in ``--rows-json`` across runs (so 1M can run on its own) and the
    section is rewritten after every gallery size."""
    saved = Path(args.rows_json) if args.rows_json else None
    rows = (
        [SweepRow(**r) for r in json.loads(saved.read_text())]
        if saved and saved.exists()
        else rows_in_benchmarks()
    )
    graphs = [g for g in SWEEP_GRAPHS if g in args.graphs.split(",")]
    for dim in (int(d) for d in args.dims.split(",")):
        for kind in args.data.split(","):
            for size in (int(s) for s in args.sizes.split(",") if s):
                print(f"size {size} dim {dim} {kind}", flush=True)
                data, qs = sweep_data(kind, size, dim, args.faces_per_id, args.queries)
                truth = sweep_truth(data, qs, "cosine" if dim > 128 else "l2")
                for dtype in graphs:
                    rescore = args.rescore if dtype != "f32" else 1
                    threads, efc = args.threads, args.expansion_add
                    new = sweep_config(
                        size,
                        kind,
                        data,
                        qs,
                        truth,
                        dtype,
                        rescore,
                        threads,
                        efc,
                        args.pages,
                        args.connectivity,
                    )
                    replaced = {r.key() for r in new}
                    rows = [r for r in rows if r.key() not in replaced]
                    rows += new
                    if saved:
                        saved.write_text(json.dumps([asdict(r) for r in rows]))
                    gc.collect()
                del data, qs
                gc.collect()
                write_sweep(rows, args)
    if not args.sizes:  # only rewrite the section from --rows-json
        write_sweep(rows, args)


def rows_in_benchmarks() -> list[SweepRow]:
    """The rows of the index_sweep section now in BENCHMARKS.md, so that a run without
    ``--rows-json`` adds its rows to them (a row of the same size, dim, data and graph is
    replaced)."""
    text = BENCHMARKS.read_text(encoding="utf-8") if BENCHMARKS.exists() else ""
    section = re.search(r"<!-- bench:index_sweep -->(.*?)<!-- /bench:index_sweep -->", text, re.S)
    rows = []
    for line in (section.group(1) if section else "").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 14 or not cells[0].replace(",", "").isdigit():
            continue
        size, dim, data, graph, ef = cells[:5]
        numbers = [float(c) for c in cells[5:]]
        rows.append(SweepRow(int(size.replace(",", "")), int(dim), data, graph, int(ef), *numbers))
    return rows


def write_sweep(rows: list[SweepRow], args: argparse.Namespace) -> None:
    rows = sorted(
        rows,
        key=lambda r: (r.dim, r.data, r.size, SWEEP_GRAPHS.index(r.graph.split()[0].rstrip(":"))),
    )
    table = [
        "| faces | dim | data | graph | ef | build s | index MB | file MB | load s | mmap load s"
        " | p50 ms | p95 ms | recall@1 | load avg |",
        "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ] + [
        f"| {r.size:,} | {r.dim} | {r.data} | {r.graph} | {r.ef} | {r.build_s:.1f} | "
        f"{r.index_mb:.0f} | {r.file_mb:.0f} | {r.load_s:.2f} | {r.mmap_s:.2f} | "
        f"{r.p50_ms:.3f} | {r.p95_ms:.3f} | {r.recall:.4f} | {r.load1:.1f} |"
        for r in rows
    ]
    body = (
        "`HnswIndex` (usearch, M=16 and ef_construction=128 unless the graph says M or efC) "
        "by graph type; 128-D is L2 "
        "(dlib-like), 512-D cosine (ArcFace-like); `clustered`: identities with "
        f"{args.faces_per_id} faces each, queries new faces of enrolled identities; `spread`: "
        "the same, but the identities' energy falls off smoothly over all 512 directions "
        "instead of sitting in a 64-D subspace (a harder case for the projected graph); "
        "`random`: "
        "Gaussian vectors and queries (worst case). recall@1 = share of "
        f"{args.queries} queries whose top face is as near as the exact nearest (float64); "
        "one query at a time (k=1) on one thread; builds on "
        f"{args.threads} threads. ef grows until recall@1 ≥ 0.9995. index MB: graph + exact "
        "rows (`memory_bytes`). load s: restart from the snapshot file (ids, owners, keys, "
        "graph and rows read, person counts rebuilt) with a warm page cache; mmap load s: the "
        "same with the exact rows mapped copy-on-write. `2 MiB pages`: the same snapshot "
        "restored and collapsed into huge pages as the service does on Linux (docs/index.md; "
        "its load s include the collapse), searched side by side with the 4 KiB copy, the two "
        "taking turns on every query (`--pages both`). load avg: 1-minute load average "
        f"right after the row was measured ({os.cpu_count()} CPUs, shared with other work: "
        "latencies and build times are noisy). Rows of several runs are merged "
        "(`--rows-json`).\n\n" + "\n".join(table)
    )
    if args.no_write:
        print(body)
    else:
        write_section("index_sweep", "Vector index sweep: 128-D and 512-D, quantised graphs", body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated gallery sizes")
    parser.add_argument("--methods", default=",".join(ALL_METHODS))
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--faces-per-id", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2, help="build threads")
    parser.add_argument(
        "--pgvector-max", type=int, default=100_000, help="largest size for pgvector"
    )
    parser.add_argument("--registry-max", type=int, default=100_000)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--sweep", action="store_true", help="the index_sweep section instead")
    parser.add_argument("--dims", default="128,512", help="--sweep: dimensions")
    parser.add_argument("--data", default="clustered", help="--sweep: clustered,spread,random")
    parser.add_argument("--graphs", default="f32,f16,i8", help="--sweep: graph dtypes")
    parser.add_argument("--rescore", type=int, default=4, help="--sweep: re-rank top k×R")
    parser.add_argument(
        "--rows-json", default="", help="--sweep: rows kept across runs (else BENCHMARKS.md's)"
    )
    parser.add_argument(
        "--expansion-add", type=int, default=128, help="--sweep: ef_construction of the graphs"
    )
    parser.add_argument(
        "--connectivity", type=int, default=16, help="--sweep: M (links per node) of the graphs"
    )
    parser.add_argument(
        "--pages",
        choices=("both", "4k", "2m"),
        default="both",
        help="--sweep: restored graphs on 4 KiB pages, on 2 MiB pages, or both side by side",
    )
    args = parser.parse_args()
    if args.sweep:
        run_sweep(args)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    methods = [m for m in args.methods.split(",") if m]
    load_before = os.getloadavg()
    rows: list[Row] = []
    for size in sizes:
        print(f"size {size}", flush=True)
        data, owners = gallery(size, args.faces_per_id)
        qs = queries(data, owners, args.queries)
        truth = exact_top1(data, qs)
        if "exact" in methods:
            rows += bench_exact(size, data, qs, truth)
        for method in methods:
            if method not in RUNNERS:
                continue
            if method == "pgvector" and size > args.pgvector_max:
                continue
            if method == "registry" and size > args.registry_max:
                continue
            rows += RUNNERS[method](size, data, qs, truth, args.threads)
            gc.collect()
    load_after = os.getloadavg()
    table = [
        "| faces | method | parameters | build s | memory MB | p50 ms | p95 ms | recall@1 |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ] + [
        f"| {r.size:,} | {r.method} | {r.params} | {r.build_s:.1f} | "
        f"{'n/a' if r.method == 'registry' else f'{r.memory_mb:.0f}'} | "
        f"{r.p50_ms:.3f} | {r.p95_ms:.3f} | {r.recall:.4f} |"
        for r in rows
    ]
    body = (
        f"{DIM}-D float32, {args.faces_per_id} faces per identity, {args.queries} queries (exact: "
        "500, 200 at 1M), one query at a time on one thread; builds on "
        f"{args.threads} threads. Memory: RSS growth for in-process indexes, index relation size "
        "for pgvector. Latency of pgvector includes the round trip over the unix socket; "
        "`registry` is the service path (change-log check + index search) on SQLite.\n"
        f"Load average before/after: {load_before[0]:.1f} / {load_after[0]:.1f} "
        f"({os.cpu_count()} CPUs; the machine was shared with other work when this ran).\n\n"
        + "\n".join(table)
        + "\n\n"
        + CHOICE
    )
    if args.no_write:
        print(body)
    else:
        write_section("index", "Vector index: 1:N search", body)


if __name__ == "__main__":
    main()
