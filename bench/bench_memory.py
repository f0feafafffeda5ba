"""Server memory over many recognize requests, and what each worker process costs.

1. RSS over time: a real ``facerec serve`` (one worker, the default models, SQLite, in-process
   index, two persons enrolled, then restarted on its files as a deployment's workers are: the
   first start's migration is not in the measured process) gets ``--requests`` recognize calls
   from ``--clients`` threads.
   The photos are variants of faces-dev photos, Grace Hopper and the astronaut at 512 to 4000 px
   (JPEG at several qualities, some PNG, some EXIF-rotated), each sent with unique trailing bytes
   so every call misses the recent-results cache and fills it. RSS / USS / PSS of the server's
   process tree at every tenth of the run.
2. Workers: RSS / USS / PSS of ``--workers 1`` and ``--workers 2`` servers idle and after
   ``--worker-requests`` requests (uvicorn starts its workers with ``spawn``: nothing is shared
   but the file-backed pages of the libraries).
3. Fork sharing: the default models loaded once and two processes forked from it, against two
   processes that each import and load them, after ``--fork-requests`` analyses each.

    .venv/bin/python -m bench.bench_memory                    # 10,000 requests (about an hour)
    .venv/bin/python -m bench.bench_memory --requests 500 --no-write   # a short run
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import itertools
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from PIL import Image
from tests.images import astronaut_png, grace_hopper_jpeg

from bench.report import write_section
from bench.server import running_server
from facerec.inference.manager import ModelManager

FACES_DEV = Path(__file__).resolve().parent.parent.parent / "shared" / "faces-dev"
SIDES = (512, 800, 1280, 1920, 2560, 3264, 4000)
API = "/api/face-recognition"
MiB = 2**20


# ---- photos ----------------------------------------------------------------------------------


def source_photos(limit: int = 24) -> list[Image.Image]:
    """Grace Hopper, the astronaut and real faces-dev photos of at least 300 px."""
    photos = [Image.open(io.BytesIO(grace_hopper_jpeg())), Image.open(io.BytesIO(astronaut_png()))]
    manifest = FACES_DEV / "manifest.csv"
    if manifest.is_file():
        with manifest.open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row["kind"] != "real" or len(photos) >= limit:
                    continue
                image = Image.open(FACES_DEV / row["path"])
                if min(image.size) >= 300:
                    photos.append(image)
    return [photo.convert("RGB") for photo in photos]


def variant(photo: Image.Image, side: int, rng: random.Random) -> bytes:
    """``photo`` scaled to ``side`` px on its longer side, on a canvas of a random aspect."""
    scale = side / max(photo.size)
    scaled = photo.resize((round(photo.width * scale), round(photo.height * scale)))
    canvas = Image.new("RGB", (side, round(side * rng.uniform(0.6, 1.0))), rng.choice(COLOURS))
    canvas.paste(scaled.crop((0, 0, *canvas.size)), (0, 0))
    out = io.BytesIO()
    if side <= 1280 and rng.random() < 0.2:
        canvas.save(out, "PNG")
    elif rng.random() < 0.2:  # stored rotated, turned upright by its EXIF orientation
        exif = Image.Exif()
        exif[0x0112] = 6
        canvas.transpose(Image.Transpose.ROTATE_90).save(out, "JPEG", quality=85, exif=exif)
    else:
        canvas.save(out, "JPEG", quality=rng.choice((70, 85, 95)))
    return out.getvalue()


COLOURS = ((128, 128, 128), (30, 30, 30), (220, 210, 200), (40, 90, 160))


def photo_pool(size: int, seed: int = 11) -> list[bytes]:
    rng = random.Random(seed)
    sources = source_photos()
    return [variant(sources[i % len(sources)], SIDES[i % len(SIDES)], rng) for i in range(size)]


# ---- memory of a process tree ----------------------------------------------------------------


@dataclass(frozen=True)
class Memory:
    rss: int
    uss: int
    pss: int
    processes: int


def tree_memory(pid: int) -> Memory:
    """RSS / USS / PSS summed over a process and its children (smaps: a few ms each)."""
    root = psutil.Process(pid)
    rss = uss = pss = 0
    processes = [root, *root.children(recursive=True)]
    for process in processes:
        info = process.memory_full_info()
        rss, uss, pss = rss + info.rss, uss + info.uss, pss + info.pss
    return Memory(rss, uss, pss, len(processes))


@dataclass
class Run:
    pid: int
    client: httpx.Client
    done: int = 0
    failed: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def enroll(client: httpx.Client) -> None:
    for name, data in (("grace", grace_hopper_jpeg()), ("astronaut", astronaut_png())):
        body = {"person_name": name, "face_image_base64": base64.b64encode(data).decode()}
        client.post(API + "/add-face", json=body).raise_for_status()


def send(
    run: Run, pool: list[bytes], count: int, clients: int, stop_at: float = float("inf")
) -> Iterator[int]:
    """Send ``count`` recognize calls from ``clients`` threads (none started after the monotonic
    time ``stop_at``); yields the count done as it grows (every 0.25 s)."""
    counter = itertools.count()

    def worker() -> None:
        while (n := next(counter)) < count and time.monotonic() < stop_at:
            data = pool[n % len(pool)] + n.to_bytes(8, "little")  # unique: a cache miss
            body = {"face_image_base64": base64.b64encode(data).decode()}
            try:
                status = run.client.post(API + "/recognize", json=body).status_code
            except httpx.HTTPError:
                status = 0
            with run.lock:
                run.done += 1
                run.failed += status not in (200, 422)  # 422: no face in a composed variant
                run.statuses[status] = run.statuses.get(status, 0) + 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        time.sleep(0.25)
        yield run.done
    yield run.done


# ---- 1. RSS over time ------------------------------------------------------------------------


def rss_over_time(args: argparse.Namespace, pool: list[bytes]) -> tuple[str, list[str]]:
    step = args.every or max(1, args.requests // 10)
    rows: list[str] = []
    trace: list[tuple[float, int, int]] = []  # (seconds, requests, rss)
    env = dict(item.split("=", 1) for item in args.env)
    # The first start migrates a new database and the persons are enrolled; the measured server
    # is that worker restarted on its files, as a deployment's workers run (Alembic is imported
    # only by a start that has something to migrate).
    with running_server(env, timeout=300) as first:
        enroll(first.client)
    with running_server(env, timeout=300, data_dir=first.data_dir) as server:
        pid = server.rss.process.pid
        run = Run(pid, server.client)
        started = time.monotonic()
        idle = tree_memory(pid)
        rows.append(row(0, idle, 0.0))
        next_mark = step
        stop_at = started + args.max_minutes * 60
        for done in send(run, pool, args.requests, args.clients, stop_at):
            now = time.monotonic() - started
            trace.append((now, done, psutil.Process(pid).memory_info().rss))
            if done >= next_mark:
                rows.append(row(next_mark, tree_memory(pid), now))
                print(rows[-1], flush=True)
                next_mark += step
        if run.done < args.requests:
            rows.append(row(run.done, tree_memory(pid), time.monotonic() - started))
            rows[-1] = rows[-1].replace(f"| {run.done:,} |", f"| {run.done:,} (stopped) |", 1)
        time.sleep(args.idle_seconds)  # the periodic malloc_trim runs in this pause
        rows.append(row(run.done, tree_memory(pid), time.monotonic() - started))
        rows[-1] = rows[-1].replace(
            f"| {run.done:,} |", f"| {run.done:,} + {args.idle_seconds:.0f} s idle |", 1
        )
        peak = server.rss.peak
    errors = ", ".join(f"{code}: {n}" for code, n in sorted(run.statuses.items()))
    table = "\n".join(
        [
            "| requests | RSS MiB | USS MiB | PSS MiB | elapsed s |",
            "|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"Peak RSS (sampled every 50 ms) {peak / MiB:.0f} MiB; responses by status: {errors}; "
            f"{args.clients} clients; photo pool of {len(pool)} variants.",
        ]
    )
    return table, [f"{t:.1f},{n},{r}" for t, n, r in trace]


def row(requests: int, memory: Memory, elapsed: float) -> str:
    return (
        f"| {requests:,} | {memory.rss / MiB:.0f} | {memory.uss / MiB:.0f} | "
        f"{memory.pss / MiB:.0f} | {elapsed:.0f} |"
    )


# ---- 2. one vs two workers -------------------------------------------------------------------


def workers(args: argparse.Namespace, pool: list[bytes]) -> str:
    parts: list[str] = []
    lines = [
        "| workers | processes | state | RSS MiB | USS MiB | PSS MiB |",
        "|---:|---:|---|---:|---:|---:|",
    ]
    for count in (1, 2):
        env = {"FACEREC_SERVER__WORKERS": str(count)}
        with running_server(env, timeout=300) as server:
            pid = server.rss.process.pid
            enroll(server.client)
            time.sleep(5)  # every worker through its lifespan (models preloaded)
            for state, memory in (
                ("idle", tree_memory(pid)),
                (f"after {args.worker_requests}", after(server.client, pid, args, pool)),
            ):
                lines.append(
                    f"| {count} | {memory.processes} | {state} | {memory.rss / MiB:.0f} | "
                    f"{memory.uss / MiB:.0f} | {memory.pss / MiB:.0f} |"
                )
                print(lines[-1], flush=True)
            parts.append(f"{count} worker(s), after: " + per_process(pid, count))
    return "\n".join([*lines, "", "RSS / USS / PSS MiB per process:", "", *parts])


def per_process(pid: int, workers: int) -> str:
    root = psutil.Process(pid)
    cells = []
    for process in [root, *root.children(recursive=True)]:
        info = process.memory_full_info()
        command = " ".join(process.cmdline())
        role = (
            ("supervisor" if workers > 1 else "server")
            if process.pid == pid
            else "resource tracker"
            if "resource_tracker" in command
            else "worker"
        )
        cells.append(f"{role} {info.rss / MiB:.0f} / {info.uss / MiB:.0f} / {info.pss / MiB:.0f}")
    return "; ".join(cells) + "."


def after(client: httpx.Client, pid: int, args: argparse.Namespace, pool: list[bytes]) -> Memory:
    for _ in send(Run(pid, client), pool, args.worker_requests, args.clients):
        pass
    return tree_memory(pid)


# ---- 3. fork sharing -------------------------------------------------------------------------


def analyse_photos(count: int) -> None:
    """Load the default models (unless loaded) and analyse ``count`` photos in this process."""
    from facerec.config import Settings
    from facerec.domain.analysis import Analyzer
    from facerec.domain.detection import DetectionService
    from facerec.domain.probes import AnalysisOptions, FaceChoice
    from facerec.domain.timing import StageTimer
    from facerec.inference.registry import build_models

    settings = Settings()
    if "models" not in LOADED:  # kept across the fork
        LOADED["models"] = ModelManager(build_models(settings), settings.models)
        LOADED["models"].preload(settings.models.preload)
    models = LOADED["models"]
    analyzer = Analyzer(models, DetectionService(models, settings.limits), 0.4, 1.5)
    options = AnalysisOptions(
        detector="retinaface", embedder="dlib_resnet", choice=FaceChoice.SUBJECT
    )
    pool = [grace_hopper_jpeg(), astronaut_png()]
    for n in range(count):
        try:
            analyzer.analyse(pool[n % 2] + n.to_bytes(8, "little"), options, StageTimer())
        except Exception as exc:
            print("analyse failed:", exc, file=sys.stderr)


LOADED: dict[str, ModelManager] = {}


def forked(args: argparse.Namespace) -> str:
    """Two processes that share the parent's loaded models (fork) against two that load their
    own (fresh interpreters), measured together while both are alive."""
    lines = ["| how | per process RSS MiB | USS MiB | PSS MiB |", "|---|---:|---:|---:|"]
    analyse_photos(1)  # parent: imports and models loaded before the fork
    for how in ("fork after loading", "fresh interpreter each"):
        children: list[tuple[int, int]] = []  # (pid, write end that releases it)
        procs: list[subprocess.Popen[bytes]] = []
        for _ in range(2):
            if how.startswith("fork"):
                ready_r, ready_w = os.pipe()
                go_r, go_w = os.pipe()
                pid = os.fork()
                if pid == 0:
                    analyse_photos(args.fork_requests)
                    os.write(ready_w, b"1")
                    os.read(go_r, 1)
                    os._exit(0)
                os.read(ready_r, 1)
                children.append((pid, go_w))
            else:
                code = f"import bench.bench_memory as b; b.analyse_photos({args.fork_requests}); "
                code += "print('ready', flush=True); input()"
                proc = subprocess.Popen(
                    [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
                )
                assert proc.stdout is not None
                proc.stdout.readline()
                procs.append(proc)
        pids = [pid for pid, _ in children] + [proc.pid for proc in procs]
        infos = [psutil.Process(pid).memory_full_info() for pid in pids]
        lines.append(
            f"| {how} | {mean(i.rss for i in infos):.0f} | {mean(i.uss for i in infos):.0f} | "
            f"{mean(i.pss for i in infos):.0f} |"
        )
        print(lines[-1], flush=True)
        for pid, go in children:
            os.write(go, b"1")
            os.waitpid(pid, 0)
        for proc in procs:
            proc.communicate(b"\n")
    return "\n".join(lines)


def mean(values: Iterator[int] | list[int]) -> float:
    items = list(values)
    return sum(items) / len(items) / MiB


# ---- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--max-minutes", type=float, default=24 * 60.0, help="stop sending then")
    parser.add_argument("--idle-seconds", type=float, default=40.0, help="pause before idle RSS")
    parser.add_argument("--every", type=int, help="requests between marks (default: a tenth)")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--pool", type=int, default=56, help="distinct photo variants")
    parser.add_argument("--worker-requests", type=int, default=300)
    parser.add_argument("--fork-requests", type=int, default=50)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    parser.add_argument("--skip", action="append", default=[], choices=["rss", "workers", "fork"])
    parser.add_argument("--trace", type=Path, help="write (seconds, requests, rss) CSV here")
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()

    pool = photo_pool(args.pool)
    parts = []
    if "rss" not in args.skip:
        table, trace = rss_over_time(args, pool)
        if args.trace:
            args.trace.write_text("seconds,requests,rss\n" + "\n".join(trace) + "\n")
        settings = " ".join(args.env) or "default settings"
        parts.append(
            f"RSS of one worker over up to {args.requests:,} recognize requests ({settings}; the "
            "worker restarted on the database its first start migrated and enrolled two persons "
            f"in; RSS / USS / PSS of the server process at each mark, under load):\n\n{table}"
        )
    if "workers" not in args.skip:
        parts.append(f"Workers (uvicorn spawns them):\n\n{workers(args, pool)}")
    if "fork" not in args.skip:
        parts.append(f"Two processes with the default models:\n\n{forked(args)}")
    body = "\n\n".join(parts)
    print(body)
    if not args.no_write:
        write_section("memory", "Memory: RSS over recognize requests, and per worker", body)


if __name__ == "__main__":
    main()
