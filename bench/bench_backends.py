"""Index backends side by side: in-process HNSW (usearch), milvus-lite, pgvector (pgserver).

Each backend holds the same synthetic gallery (identities on the unit sphere, crowded in a
32-D subspace like real face embeddings, 4 noisy faces each) and answers the same queries (new
noisy samples of enrolled identities) the way the service asks: the 16 nearest faces (k=1 with
the searchers' oversampling), one query at a time. recall@1: share of queries whose nearest face
is the exact nearest face.

- ``memory``: facerec's HnswIndex (M=16, ef_construction=128, 2 build threads), in this process.
- ``milvus-lite``: facerec's MilvusGateway (upsert in batches of 5,000, HNSW M=16,
  efConstruction=128, Strong consistency) against an embedded milvus-lite file; milvus-lite
  serves gRPC from a thread of this process, so its latency includes a gRPC round trip. It is
  a pure-Python engine whose search time grows about linearly with the rows held (it merges
  upserted versions across segments on every search), so it gets ``--lite-queries`` queries
  (default 50) at one ef.
- ``pgvector``: PostgreSQL 16 + pgvector from the pgserver wheel, rows loaded with COPY, HNSW
  (m=16, ef_construction=128) built after the load, queried over the unix socket (asyncpg).

    python bench/bench_backends.py  # 100k faces, 128-D and 512-D (~10 min on 2 idle cores)
    python bench/bench_backends.py --size 20000 --no-write  # quick look
    python bench/bench_backends.py --pgvector-1m --time-cap-s 1800  # pgvector at 1M, 128-D

Writes the ``backends`` section of BENCHMARKS.md (``--pgvector-1m`` writes ``backends_pg1m``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(REPO))

from bench.report import percentile, write_section  # noqa: E402

FETCH = 16  # what the searchers ask for with k=1 (max(4k, 16)), then one hit per person
EFS = (64, 128)
PER_ID = 4


@dataclass
class Row:
    dim: int
    size: int
    backend: str
    params: str
    load_s: float
    build_s: float
    p50_ms: float
    p95_ms: float
    recall: float


def gallery(n: int, dim: int, seed: int = 0) -> NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    n_ids = max(1, n // PER_ID)
    basis = rng.standard_normal((32, dim)).astype(np.float32)
    centres = rng.standard_normal((n_ids, 32)).astype(np.float32) @ basis / np.sqrt(32)
    centres += 0.5 * rng.standard_normal((n_ids, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    owners = np.repeat(np.arange(n_ids), PER_ID)[:n]
    noise = 0.35 / np.sqrt(dim)
    noisy = centres[owners] + noise * rng.standard_normal((n, dim))
    result: NDArray[np.float32] = noisy.astype(np.float32)
    return result


def queries(data: NDArray[np.float32], count: int, seed: int = 1) -> NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(data) // PER_ID, count) * PER_ID
    centres = np.stack([data[p : p + PER_ID].mean(0) for p in picks])
    noise = 0.35 / np.sqrt(data.shape[1])
    result: NDArray[np.float32] = (centres + noise * rng.standard_normal(centres.shape)).astype(
        np.float32
    )
    return result


def exact_top1(data: NDArray[np.float32], qs: NDArray[np.float32]) -> NDArray[np.int64]:
    best = np.full(len(qs), -1, np.int64)
    best_d = np.full(len(qs), np.inf, np.float32)
    for start in range(0, len(data), 50_000):
        block = data[start : start + 50_000]
        d = (block * block).sum(1)[None, :] - 2.0 * qs @ block.T
        idx = d.argmin(1)
        val = d[np.arange(len(qs)), idx]
        better = val < best_d
        best[better] = idx[better] + start
        best_d[better] = val[better]
    return best


def summarise(
    dim: int, size: int, backend: str, params: str, load: float, build: float,
    times: list[float], found: list[int], truth: NDArray[np.int64],
) -> Row:  # fmt: skip
    recall = float(np.mean(np.asarray(found) == truth[: len(found)]))
    result = Row(
        dim, size, backend, params, load, build,
        percentile(times, 50), percentile(times, 95), recall,
    )  # fmt: skip
    print(
        f"  {dim:4d}-D {size:>9,} {backend:12s} {params:24s} load {load:7.1f}s build {build:7.1f}s"
        f" p50 {result.p50_ms:7.3f}ms p95 {result.p95_ms:7.3f}ms recall@1 {recall:.4f}",
        flush=True,
    )
    return result


def bench_memory(
    data: NDArray[np.float32], qs: NDArray[np.float32], truth: NDArray[np.int64]
) -> list[Row]:
    try:
        from facerec.storage.hnsw_index import HnswIndex
    except ImportError:  # before the HNSW index had a module of its own
        from facerec.storage.vector_index import HnswIndex  # type: ignore[no-redef,unused-ignore]

    size, dim = data.shape
    ids = [str(i) for i in range(size)]
    rows = []
    t0 = time.perf_counter()
    index = HnswIndex(dim, "l2", connectivity=16, expansion_add=128, expansion_search=64, threads=2)
    index.add(ids, data)
    build = time.perf_counter() - t0
    for ef in EFS:
        _with_ef(index, ef)
        times, found = [], []
        for q in qs[:20]:
            index.search(q, FETCH)
        for q in qs:
            t = time.perf_counter_ns()
            found.append(int(index.search(q, FETCH)[0][0]))
            times.append((time.perf_counter_ns() - t) / 1e6)
        params = f"usearch M=16 ef={ef}"
        rows.append(summarise(dim, size, "memory", params, 0.0, build, times, found, truth))
    return rows


def _with_ef(index: object, ef: int) -> None:
    inner = getattr(index, "_index", None)
    if inner is not None and hasattr(inner, "expansion_search"):
        inner.expansion_search = ef


async def bench_milvus(
    data: NDArray[np.float32], qs: NDArray[np.float32], truth: NDArray[np.int64], root: Path
) -> list[Row]:
    from facerec.errors import StorageUnavailableError
    from facerec.storage.index_options import MilvusOptions
    from facerec.storage.milvus_client import MilvusGateway
    from facerec.storage.models import EmbeddingSpace
    from facerec.storage.protocols import FaceVector

    size, dim = data.shape
    gateway = MilvusGateway(MilvusOptions(uri=str(root / f"milvus-{dim}.db"), timeout_s=600))
    spec = EmbeddingSpace(f"bench{dim}@1", dim, "l2")
    t0 = time.perf_counter()
    name = await gateway.ensure_faces("bench", spec, m=16, ef=128)
    faces = [FaceVector(str(i), str(i // PER_ID), "bench", spec.name, data[i]) for i in range(size)]
    await gateway.upsert(name, faces)
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    await gateway.call("flush", lambda c: c.flush(name))
    await gateway.search(name, spec, qs[0], FETCH, 64)  # the first search waits for the index
    build = time.perf_counter() - t0
    rows = []
    for ef in EFS[:1]:  # milvus-lite's search cost does not depend on ef (see the module doc)
        times, found = [], []
        for q in qs[:3]:
            await gateway.search(name, spec, q, FETCH, ef)
        for q in qs:
            t = time.perf_counter_ns()
            hits = await gateway.search(name, spec, q, FETCH, ef)
            times.append((time.perf_counter_ns() - t) / 1e6)
            found.append(int(hits[0][1]))
        params = f"HNSW M=16 ef={ef}"
        rows.append(summarise(dim, size, "milvus-lite", params, load, build, times, found, truth))
    try:  # milvus-lite's drop can race with its own background index build
        await gateway.drop(name)
    except StorageUnavailableError as exc:
        print(f"  milvus-lite: dropping {name} failed ({exc.__cause__}); left in {root}")
    await gateway.close()
    return rows


def copy_text(data: NDArray[np.float32], start: int) -> bytes:
    lines = (
        f"{start + i}\t[{','.join(f'{x:.7g}' for x in v.tolist())}]\n" for i, v in enumerate(data)
    )
    return "".join(lines).encode()


async def bench_pgvector(
    data: NDArray[np.float32],
    qs: NDArray[np.float32],
    truth: NDArray[np.int64] | None,
    *,
    efs: tuple[int, ...] = EFS,
    deadline: float = float("inf"),
) -> tuple[list[Row], list[str]]:
    """Rows measured, and notes on what did not finish before ``deadline`` (monotonic)."""
    import asyncpg

    with warnings.catch_warnings():  # platformdirs: XDG_RUNTIME_DIR is not set
        warnings.simplefilter("ignore")
        import pgserver

    size, dim = data.shape
    notes: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="facerec-bench-pg-"))
    server = pgserver.get_server(root, cleanup_mode="stop")  # type: ignore[attr-defined]
    try:
        server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
        conn = await asyncpg.connect(host=str(root), user="postgres", database="postgres")
        await conn.execute(f"CREATE TABLE bench (id int PRIMARY KEY, embedding vector({dim}))")
        t0 = time.perf_counter()
        for start in range(0, size, 20_000):
            payload = copy_text(data[start : start + 20_000], start)
            await conn.copy_to_table("bench", source=io.BytesIO(payload), format="text")
            if time.monotonic() > deadline:
                notes.append(f"load stopped at {start + 20_000:,} rows (time cap)")
                return [], notes
        load = time.perf_counter() - t0
        print(f"  pgvector {dim}-D: {size:,} rows loaded in {load:.1f} s", flush=True)
        await conn.execute("SET maintenance_work_mem = '4GB'")
        await conn.execute("SET max_parallel_maintenance_workers = 1")
        left = deadline - time.monotonic()
        if left < float("inf"):
            await conn.execute(f"SET statement_timeout = {max(1, int(left * 1000))}")
        t0 = time.perf_counter()
        try:
            await conn.execute(
                "CREATE INDEX bench_hnsw ON bench USING hnsw (embedding vector_l2_ops)"
                " WITH (m = 16, ef_construction = 128)"
            )
        except asyncpg.QueryCanceledError:
            notes.append(
                f"rows loaded in {load:.0f} s; HNSW build cancelled by the time cap after "
                f"{time.perf_counter() - t0:.0f} s"
            )
            return [], notes
        build = time.perf_counter() - t0
        await conn.execute("SET statement_timeout = 0")
        index_mb = float(await conn.fetchval("SELECT pg_relation_size('bench_hnsw')")) / 2**20
        notes.append(f"{dim}-D HNSW index size: {index_mb:.0f} MB for {size:,} rows")
        statement = await conn.prepare(
            f"SELECT id FROM bench ORDER BY embedding <-> $1::text::vector LIMIT {FETCH}"
        )
        literals = ["[" + ",".join(f"{x:.7g}" for x in q.tolist()) + "]" for q in qs]
        rows = []
        for ef in efs:
            await conn.execute(f"SET hnsw.ef_search = {ef}")
            times, found = [], []
            for lit in literals[:20]:
                await statement.fetch(lit)
            for lit in literals:
                t = time.perf_counter_ns()
                result = await statement.fetch(lit)
                times.append((time.perf_counter_ns() - t) / 1e6)
                found.append(int(result[0][0]))
            assert truth is not None
            params = f"HNSW m=16 ef={ef}"
            rows.append(summarise(dim, size, "pgvector", params, load, build, times, found, truth))
        await conn.close()
        return rows, notes
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def table(rows: list[Row]) -> str:
    lines = [
        "| dim | faces | backend | settings | insert s | index build s | p50 ms | p95 ms "
        "| recall@1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.dim} | {r.size:,} | {r.backend} | {r.params} | {r.load_s:.1f} | "
            f"{r.build_s:.1f} | {r.p50_ms:.3f} | {r.p95_ms:.3f} | {r.recall:.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--dims", default="128,512")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--backends", default="memory,milvus-lite,pgvector")
    parser.add_argument(
        "--lite-queries", type=int, default=50, help="milvus-lite is slow: fewer queries"
    )
    parser.add_argument("--pgvector-1m", action="store_true", help="only pgvector, 1M x 128-D")
    parser.add_argument("--time-cap-s", type=float, default=1800.0, help="for --pgvector-1m")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    if args.pgvector_1m:
        run_pgvector_1m(args)
        return
    backends = args.backends.split(",")
    dims = [int(d) for d in args.dims.split(",")]
    rows: list[Row] = []
    root = Path(tempfile.mkdtemp(prefix="facerec-bench-backends-"))
    try:
        for done, dim in enumerate(dims, 1):
            data = gallery(args.size, dim)
            qs = queries(data, args.queries)
            truth = exact_top1(data, qs)
            if "memory" in backends:
                rows += bench_memory(data, qs, truth)
            if "milvus-lite" in backends:
                lite = min(args.lite_queries, len(qs))
                rows += asyncio.run(bench_milvus(data, qs[:lite], truth[:lite], root))
            if "pgvector" in backends:
                rows += asyncio.run(bench_pgvector(data, qs, truth))[0]
            if not args.no_write:  # after each dimension: a run cut short keeps what it measured
                pending = ", ".join(f"{d}-D" for d in dims[done:])
                write_backends(args, rows, f"\n\n(still running: {pending})" if pending else "")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def write_backends(args: argparse.Namespace, rows: list[Row], note: str) -> None:
    body = (
        f"{args.size:,} faces ({PER_ID} per identity), {args.queries} queries "
        f"(milvus-lite: {args.lite_queries}), one at a time; "
        f"each search asks for the {FETCH} nearest faces (what the searchers fetch for k=1). "
        "`insert`: rows into the backend (milvus-lite: upserts through facerec's MilvusGateway; "
        "pgvector: COPY); `index build`: HNSW construction (milvus-lite: flush, then the first "
        "search, which waits for the index; memory: usearch add on 2 threads). Latency is the "
        "index alone, without the change-log check the searchers add (~0.05 ms on SQLite).\n\n"
        + table(rows)
        + note
    )
    write_section("backends", "Index backends: in-process vs milvus-lite vs pgvector", body)


def run_pgvector_1m(args: argparse.Namespace) -> None:
    size, dim = 1_000_000, 128
    deadline = time.monotonic() + args.time_cap_s
    started = time.perf_counter()
    data = gallery(size, dim)
    qs = queries(data, args.queries)
    truth = exact_top1(data, qs)
    rows, notes = asyncio.run(bench_pgvector(data, qs, truth, efs=(40, 64, 128), deadline=deadline))
    notes.append(
        f"total wall time {time.perf_counter() - started:.0f} s (cap {args.time_cap_s:.0f} s)"
    )
    for note in notes:
        print("  " + note, flush=True)
    body = (
        f"pgvector (pgserver, PostgreSQL 16) at {size:,} faces, {dim}-D, {args.queries} queries of "
        f"the {FETCH} nearest faces; rows loaded with COPY, then HNSW m=16 ef_construction=128 "
        "built with maintenance_work_mem=4GB and one parallel maintenance worker.\n\n"
        + (table(rows) if rows else "(no search figures: see the notes)")
        + "\n\n"
        + "\n".join(f"- {n}" for n in notes)
    )
    if not args.no_write:
        write_section("backends_pg1m", "pgvector at 1M faces (128-D)", body)


if __name__ == "__main__":
    main()
