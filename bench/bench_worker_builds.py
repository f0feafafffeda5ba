"""Two worker processes start on a gallery past the HNSW threshold: one graph build, or two.

A SQLite gallery of ``--size`` synthetic 512-D faces (``bench_index.sweep_data``, cosine) is
written once. Then two processes start together on it, each as a service worker does: an
``IndexRegistry`` warmed (exact search answering) while its graph is built in the background.

- *shared*: both use one ``index_dir`` (the service's default): one claims the build, the
  other waits and loads the snapshot the first writes as soon as its graph is swapped in;
- *separate*: no ``index_dir``, so each builds its own graph (what every worker did before).

Per process: whether it built the graph, seconds from start until its graph answers, and CPU
seconds used. The two modes run in turn, ``--runs`` times each, on the same gallery.

    python bench/bench_worker_builds.py --size 100000

Writes the ``worker_builds`` section of BENCHMARKS.md (``--no-write``: only print it).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(REPO))

from bench.bench_index import sweep_data  # noqa: E402
from bench.report import write_section  # noqa: E402

SPACE = "bench@512"
KEY = ("default", SPACE)


@dataclass
class Worker:
    mode: str
    run: int
    built: bool
    ready_s: float
    cpu_s: float


async def fill(url: str, size: int) -> None:
    from facerec.config import Settings
    from facerec.storage import (
        EmbeddingSpace,
        NewFace,
        NewPerson,
        SqlGalleryRepository,
        create_engine,
        upgrade_database,
    )

    data, _ = sweep_data("spread", size, 512, 4, 1)
    settings = Settings(database_url=url)
    engine = create_engine(settings.db)
    try:
        await upgrade_database(settings, engine=engine)
        repo = SqlGalleryRepository(engine)
        await repo.ensure_space(EmbeddingSpace(SPACE, 512, "cosine"))
        for start in range(0, size, 1000):  # (who owns a face does not matter to a build)
            person = await repo.create_person(NewPerson(name=f"batch{start}"))
            faces = [NewFace(space=SPACE, embedding=v) for v in data[start : start + 1000]]
            await repo.add_faces(person.id, faces)
    finally:
        await engine.dispose()


Result = tuple[bool, float, float]  # built here, graph after (s), CPU (s)


def worker(url: str, index_dir: str | None, start: Barrier, out: mp.Queue[Result]) -> None:
    asyncio.run(_worker(url, index_dir, start, out))


async def _worker(url: str, index_dir: str | None, start: Barrier, out: mp.Queue[Result]) -> None:
    from facerec.config import Settings
    from facerec.storage import IndexOptions, IndexRegistry, SqlGalleryRepository, create_engine
    from facerec.storage.index_builds import IndexBuilds
    from facerec.storage.vector_index import HnswIndex

    built: list[bool] = []
    build = IndexBuilds.hnsw_from

    def counted(self: IndexBuilds, *args: object) -> HnswIndex:
        built.append(True)
        return build(self, *args)  # type: ignore[arg-type]

    IndexBuilds.hnsw_from = counted  # type: ignore[method-assign,assignment]
    engine = create_engine(Settings(database_url=url).db)
    options = IndexOptions(backend="memory", index_dir=Path(index_dir) if index_dir else None)
    registry = IndexRegistry(SqlGalleryRepository(engine), options)
    start.wait()
    began, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    try:
        await registry.warm()
        for _ in range(60_000):  # (bounded: 10 minutes)
            if isinstance(registry._shards[KEY].index, HnswIndex):
                break
            await asyncio.sleep(0.01)
        ready = time.perf_counter() - began
        used = resource.getrusage(resource.RUSAGE_SELF)
        out.put((bool(built), ready, used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime))
    finally:
        await registry.close()
        await engine.dispose()


def run_pair(url: str, index_dir: Path | None, mode: str, run: int) -> list[Worker]:
    context = mp.get_context("spawn")
    start = context.Barrier(2)
    out: mp.Queue[Result] = context.Queue()
    where = str(index_dir) if index_dir else None
    procs = [context.Process(target=worker, args=(url, where, start, out)) for _ in range(2)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=900) for _ in procs]
    for proc in procs:
        proc.join(120)
    return [Worker(mode, run, *r) for r in sorted(results, key=lambda r: not r[0])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="facerec-bench-workers-"))
    url = f"sqlite+aiosqlite:///{root / 'gallery.db'}"
    try:
        started = time.perf_counter()
        asyncio.run(fill(url, args.size))
        print(f"gallery of {args.size} faces written in {time.perf_counter() - started:.0f} s")
        rows: list[Worker] = []
        for run in range(1, args.runs + 1):
            for mode in ("shared", "separate"):
                index_dir = root / f"index-{mode}-{run}" if mode == "shared" else None
                pair = run_pair(url, index_dir, mode, run)
                rows += pair
                for w in pair:
                    print(w)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    body = report(rows, args.size)
    print(body)
    if not args.no_write:
        write_section("worker_builds", "Two workers starting on a large gallery", body)


def report(rows: list[Worker], size: int) -> str:
    lines = [
        f"A {size:,}-face gallery (synthetic 512-D, cosine, i8 graph on principal directions, "
        "M 32): two worker processes start together; each answers with exact search until its "
        "graph is in place.",
        "",
        "| run | index_dir | builds | graphs answering in both after | CPU s, both "
        "workers | per worker: built here, graph after, CPU s |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for run in sorted({r.run for r in rows}):
        for mode in ("shared", "separate"):
            pair = [r for r in rows if (r.run, r.mode) == (run, mode)]
            per = "; ".join(
                f"{'built' if r.built else 'loaded'}, {r.ready_s:.1f} s, {r.cpu_s:.1f}"
                for r in pair
            )
            label = "shared (default)" if mode == "shared" else "none (each its own)"
            lines.append(
                f"| {run} | {label} | {sum(r.built for r in pair)} | "
                f"{max(r.ready_s for r in pair):.1f} s | {sum(r.cpu_s for r in pair):.1f} | {per} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
