"""`facerec serve` started and restarted on a large gallery: when it is ready, and its first
recognize.

The issue this answers: with 100k faces, ``/ready`` came in ~4 s but the first recognize took
79-96 s, building the HNSW index inside the request, and a crash cost a rebuild at the next
start. The service now loads the index's snapshot at start-up, serves by exact search while a
graph without one builds in the background, and writes the snapshot as soon as a graph is built.

The real server (``python -m facerec.cli serve``: SQLite, default models, its own data dir):

1. *setup*: a server enrolls grace_hopper.jpg (``/add-face``) and stops; the gallery is then
   filled offline, through the repository, to ``--size`` faces: synthetic persons of 4 faces in
   the space the server enrolled her in (``bench_index.sweep_data``, that space's dimension).
2. *first start*, no snapshot: seconds to ``/ready``; the first recognize (exact search, while
   the graph builds in the background); seconds until the graph's snapshot is written; a
   graceful stop (SIGTERM).
3. *restart*, ``--runs`` times: seconds from the process's start to ``/ready``, the first
   recognize's milliseconds and answer, and the p50 of ``--queries`` more.
4. *crash*: an astronaut is enrolled through the API after the snapshot; the server is killed
   (SIGKILL) and started again: seconds to ``/ready``, and whether the first recognize of the
   astronaut names her (the change log replayed over the snapshot).

5. *changes*: the first enrollments after a start (astronaut faces, one person over reruns),
   and, on the last server before its graceful stop, the first erasure (a synthetic person),
   each followed by a recognize, with ``/health`` polled every 10 ms: how long the event loop
   stalled while the index took the change.

Whether a start loaded the snapshot or built: its log (``loaded index snapshot`` / ``swapped
in``), and how long loading the indexes took (``vector indexes ready in``).

``--mmap both`` measures each restart twice in a row, reading the snapshot's exact rows and
mapping them (``FACEREC_INDEX__HNSW_MMAP_SNAPSHOTS``), so the two are compared side by side.
``--keep DIR`` keeps the gallery's files in DIR; a later run on the same DIR and size skips
the fill and the first start (it restarts on the snapshot there). ``--cold`` empties the page
cache before each restart (root): the snapshot and the database are read from disk, as after a
reboot, and mapped rows are faulted in by the first searches.

    python bench/bench_restart.py --size 1000000
    python bench/bench_restart.py --size 1000000 --embedder w600k_mbf --mmap both --keep /tmp/g

Writes the ``restart`` section of BENCHMARKS.md (``--no-write``: only print it).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(REPO))

from tests.images import astronaut_png, grace_hopper_jpeg  # noqa: E402

from bench.bench_index import sweep_data  # noqa: E402
from bench.bench_sizes import model_dir  # noqa: E402
from bench.bench_throughput import MOBILEFACENET, model_dir_with_packs  # noqa: E402
from bench.report import percentile, write_section  # noqa: E402
from bench.server import free_port, server_env  # noqa: E402

API = "/api/face-recognition"
PER_PERSON = 4
READY_TIMEOUT_S = 300.0
SNAPSHOT_TIMEOUT_S = 1800.0  # a 1M-face build on two cores takes minutes
GALLERY = "gallery.json"  # what a run on a --keep dir reuses
ENROLLMENTS = 20  # measured after a start


@dataclass
class Start:
    step: str
    ready_s: float
    first_ms: float
    first_named: str | None  # the name the first recognize gave (None: unknown)
    p50_ms: float | None
    index: str  # what the start's log says of the index
    index_s: float | None  # the indexes' load, from the start's log


class Server:
    """One ``facerec serve`` process on ``root``'s files; its log in ``root/serve-N.log``;
    ``embedder``: the default embedder's name (None: the service's default)."""

    def __init__(self, root: Path, number: int, embedder: str | None, mmap: bool = False) -> None:
        self.port = free_port()
        self.log = root / f"serve-{number}.log"
        self.mmap = mmap
        env = server_env(root, log_level="info")
        env["FACEREC_INDEX__HNSW_MMAP_SNAPSHOTS"] = str(mmap).lower()
        if embedder is not None:
            env["FACEREC_MODELS__DEFAULT_EMBEDDER"] = embedder
        self.started = time.perf_counter()
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "facerec.cli", "serve", "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=600)

    def ready(self) -> float:
        """Seconds from the process's start until ``/ready`` answered 200."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if self.client.get("/ready").status_code == 200:
                    return time.perf_counter() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"facerec serve did not become ready: see {self.log}")

    def enroll(self, name: str, photo: bytes, person_id: str | None = None) -> str:
        """The person's id; ``person_id``: that person (created, or given one more face)."""
        body = {"person_name": name, "face_image_base64": base64.b64encode(photo).decode()}
        if person_id is not None:
            body["person_id"] = person_id
        response = self.client.post(API + "/add-face", json=body)
        response.raise_for_status()
        return str(response.json()["person_id"])

    def recognize(self, photo: bytes) -> tuple[float, str | None]:
        """Milliseconds of one recognize and the person it named."""
        body = {"face_image_base64": base64.b64encode(photo).decode()}
        began = time.perf_counter()
        response = self.client.post(API + "/recognize", json=body)
        elapsed = (time.perf_counter() - began) * 1000
        response.raise_for_status()
        found = response.json()
        best = found.get("best_match")
        return elapsed, None if found.get("unknown") or not best else str(best["person_name"])

    def stop(self, *, crash: bool = False) -> None:
        self.client.close()
        self.process.send_signal(signal.SIGKILL if crash else signal.SIGTERM)
        self.process.wait(timeout=300)

    def index_said(self) -> str:
        text = self.log.read_text(errors="replace")
        said = [
            what
            for needle, what in (
                ("loaded index snapshot", "snapshot loaded"),
                ("swapped in", "graph built"),
            )
            if needle in text
        ]
        return ", ".join(said) or "exact search"

    def index_s(self) -> float | None:
        """Seconds the start-up's index load took, as its log says."""
        text = self.log.read_text(errors="replace")
        found = re.search(r"vector indexes ready in ([0-9.]+) s", text)
        return None if found is None else float(found.group(1))


async def fill(root: Path, grace: str, size: int) -> tuple[int, str]:
    """Synthetic persons of ``PER_PERSON`` faces in grace's space, until the gallery holds
    ``size`` faces; returns how many were added, and the space (dimension, metric)."""
    from facerec.config import Settings
    from facerec.storage import NewFace, NewPerson, SqlGalleryRepository, create_engine

    engine = create_engine(Settings(database_url=server_env(root)["FACEREC_DB__URL"]).db)
    try:
        repo = SqlGalleryRepository(engine)
        (face,) = await repo.list_faces(grace)
        space = await repo.get_space(face.space)
        wanted = size - 1
        data, _ = sweep_data("spread", wanted, space.dim, PER_PERSON, 1)
        for start in range(0, wanted, PER_PERSON):
            person = f"synthetic-{start // PER_PERSON}"
            faces = [NewFace(space=space.name, embedding=v) for v in data[start : start + 4]]
            await repo.add_faces(person, faces, create=NewPerson(name=person, id=person))
        await repo.close()
        return wanted, f"{space.dim}-D, {space.metric}"
    finally:
        await engine.dispose()


def measured(server: Server, step: str, photo: bytes, queries: int) -> Start:
    ready = server.ready()
    first_ms, named = server.recognize(photo)
    times = [server.recognize(photo + i.to_bytes(4, "little"))[0] for i in range(queries)]
    p50 = percentile(times, 50) if times else None
    return Start(step, ready, first_ms, named, p50, server.index_said(), server.index_s())


def wait_for_snapshot(root: Path, server: Server) -> float:
    """Seconds from ``server``'s start until a graph snapshot is in ``index_dir``."""
    while time.perf_counter() - server.started < SNAPSHOT_TIMEOUT_S:
        if any((root / "index").glob("*.hnsw")):
            return time.perf_counter() - server.started
        time.sleep(0.5)
    raise RuntimeError("no index snapshot was written")


@dataclass
class Changed:
    step: str
    change: str  # what was done: enrollments, or an erasure
    change_ms: float  # the slowest
    recognize_ms: float  # the slowest recognize after one, which applies it to the index
    health_worst_ms: float  # /health polled meanwhile: how long the event loop stalled


def changed(server: Server, step: str, change: str, calls: list[Callable[[], object]]) -> Changed:
    """``calls`` (changes to the gallery), each followed by a recognize, with ``/health`` polled
    every 10 ms meanwhile."""
    worst = 0.0
    done = threading.Event()

    def poll() -> None:
        nonlocal worst
        with httpx.Client(base_url=server.client.base_url, timeout=60) as client:
            while not done.is_set():
                began = time.perf_counter()
                client.get("/health")
                worst = max(worst, time.perf_counter() - began)
                time.sleep(0.01)

    poller = threading.Thread(target=poll)
    poller.start()
    change_ms = recognize_ms = 0.0
    for i, call in enumerate(calls):
        began = time.perf_counter()
        call()
        change_ms = max(change_ms, (time.perf_counter() - began) * 1000)
        took, _ = server.recognize(grace_hopper_jpeg() + bytes([i]))
        recognize_ms = max(recognize_ms, took)
    done.set()
    poller.join()
    return Changed(step, change, change_ms, recognize_ms, worst * 1000)


def enrolled(server: Server, step: str) -> Changed:
    """The first ``ENROLLMENTS`` enrollments after a start (faces of the astronaut, one person
    over reruns). Several: the first faces take keys freed by erasures, and only a face past
    those grows the rows loaded from the snapshot."""
    photos = [astronaut_png() + bytes([i]) for i in range(ENROLLMENTS)]
    calls = [partial(server.enroll, "astronaut", photo, "astronaut") for photo in photos]
    return changed(server, step, f"{ENROLLMENTS} enrollments", list(calls))


def erased(server: Server, step: str, person: str) -> Changed:
    """The first erasure after a start: a synthetic person (a removal copies rows mapped from
    the snapshot into memory, and deletes the snapshot: the graceful stop after writes it)."""

    def erase() -> None:
        server.client.delete(f"{API}/persons/{person}").raise_for_status()

    return changed(server, step, "an erasure", [erase])


def setup(root: Path, size: int, embedder: str | None) -> dict[str, Any]:
    """Steps 1 and 2 on a new ``root``: grace enrolled, the gallery filled, the first start
    measured until its snapshot is written. What later runs on ``root`` reuse."""
    server = Server(root, 0, embedder)
    server.ready()
    grace = server.enroll("grace", grace_hopper_jpeg())
    server.stop()
    began = time.perf_counter()
    added, space = asyncio.run(fill(root, grace, size))
    fill_s = time.perf_counter() - began
    print(f"{added + 1} faces in the gallery ({fill_s:.0f} s to write them)")
    server = Server(root, 1, embedder)
    first = measured(server, "first start (no snapshot)", grace_hopper_jpeg(), 0)
    snapshot_s = wait_for_snapshot(root, server)
    first.index = server.index_said()
    server.stop()
    print(first, f"snapshot after {snapshot_s:.0f} s")
    gallery: dict[str, Any] = {
        "size": size,
        "embedder": embedder,
        "space": space,
        "fill_s": fill_s,
        "snapshot_s": snapshot_s,
        "first": asdict(first),
    }
    (root / GALLERY).write_text(json.dumps(gallery))
    return gallery


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000, help="faces in the gallery")
    parser.add_argument("--runs", type=int, default=3, help="graceful restarts measured")
    parser.add_argument("--queries", type=int, default=20, help="recognize calls after the first")
    parser.add_argument(
        "--embedder",
        choices=["default", "mobilefacenet", "w600k_mbf"],
        default="default",
        help="a pack from ../shared/models: mobilefacenet (128-D, cosine) or w600k_mbf "
        "(InsightFace's, 512-D, cosine; non-commercial weights)",
    )
    parser.add_argument(
        "--mmap",
        choices=["off", "on", "both"],
        default="off",
        help="map the snapshot's exact rows instead of reading them (both: each restart twice)",
    )
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the gallery in this dir")
    parser.add_argument(
        "--cold",
        action="store_true",
        help="empty the page cache before each restart, as after a reboot (root, Linux)",
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    from facerec.storage.index_options import IndexOptions

    threshold = IndexOptions().hnsw_threshold
    if args.size <= threshold:
        parser.error(f"--size must pass the HNSW threshold ({threshold:,} faces)")
    root = args.keep or Path(tempfile.mkdtemp(prefix="facerec-bench-restart-"))
    root.mkdir(parents=True, exist_ok=True)
    embedder = {"default": None, "mobilefacenet": MOBILEFACENET[0]}.get(
        args.embedder, args.embedder
    )
    if args.embedder == "mobilefacenet" and not (root / "models").exists():
        model_dir_with_packs(root)
    elif args.embedder == "w600k_mbf" and not (root / "models").exists():
        model_dir(root / "models")
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.mmap]
    starts: list[Start] = []
    try:
        kept = root / GALLERY
        gallery = json.loads(kept.read_text()) if kept.exists() else None
        if gallery is not None and (gallery["size"], gallery["embedder"]) != (args.size, embedder):
            parser.error(f"{root} holds another gallery: {gallery['size']}, {gallery['embedder']}")
        reused = gallery is not None
        if gallery is None:
            gallery = setup(root, args.size, embedder)
        first = Start(**gallery["first"])
        if reused:
            first.step += " (an earlier run)"
        starts.append(first)
        numbers = itertools.count(len(list(root.glob("serve-*.log"))))

        def restart(mmap: bool, step: str, photo: bytes) -> Server:
            """A new server on the gallery (the page cache emptied first with --cold), measured."""
            if args.cold:
                drop_caches()
            server = Server(root, next(numbers), embedder, mmap)
            starts.append(measured(server, step + label(mmap, modes), photo, args.queries))
            print(starts[-1])
            return server

        server = None
        for run in range(1, args.runs + 1):
            for mmap in modes:
                if server is not None:
                    server.stop()
                server = restart(mmap, f"restart {run}", grace_hopper_jpeg())
        assert server is not None
        changes: list[Changed] = []
        for mmap in modes:
            step = f"after {'a crash' if changes else 'the last restart'}"
            changes.append(enrolled(server, step + label(server.mmap, modes)))
            print(changes[-1])
            server.stop(crash=True)
            server = restart(mmap, "after a crash", astronaut_png())
        erasure = gallery.get("erased", 0)
        step = f"after a crash{label(server.mmap, modes)}"
        last = args.size // PER_PERSON - 2  # (synthetic persons, erased from the last one down)
        changes.append(erased(server, step, f"synthetic-{last - erasure}"))
        gallery["erased"] = erasure + 1
        (root / GALLERY).write_text(json.dumps(gallery))
        print(changes[-1])
        server.stop()
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    model = f"{embedder or 'default models'}, {gallery['space']}"
    body = report(starts, args.size, model, gallery) + changes_report(changes)
    print(body)
    if not args.no_write:
        name = "restart" if embedder is None else f"restart_{embedder}"
        title = f"Start and restart on a large gallery ({embedder or 'default models'})"
        if args.cold:
            name, title = f"{name}_cold", f"{title}, page cache emptied before each restart"
        write_section(name, title, body)


def drop_caches() -> None:
    """The page cache emptied, as after a reboot: the snapshot and the database come from
    disk again (needs root; Linux)."""
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("1\n")


def label(mmap: bool, modes: list[bool]) -> str:
    if len(modes) == 1:
        return ""
    return ", rows mapped" if mmap else ", rows read"


def changes_report(changes: list[Changed]) -> str:
    lines = [
        "",
        f"Changes after a start: the first {ENROLLMENTS} enrollments (faces of the astronaut, "
        "through `/add-face`), then, before the last graceful stop, the first erasure (a "
        "synthetic person, `DELETE /persons/{id}`); each followed by a recognize (which "
        "applies the change to the index loaded from the snapshot), with `/health` polled "
        "every 10 ms meanwhile: the slowest of each, and `/health`'s worst latency, how long "
        "the event loop stalled.",
        "",
        "| server | change | change ms (max) | recognize ms (max) | /health worst ms |",
        "|---|---|---:|---:|---:|",
    ]
    for c in changes:
        lines.append(
            f"| {c.step} | {c.change} | {c.change_ms:.0f} | {c.recognize_ms:.0f} "
            f"| {c.health_worst_ms:.0f} |"
        )
    return "\n".join(lines) + "\n"


def report(starts: list[Start], size: int, model: str, gallery: dict[str, Any]) -> str:
    lines = [
        f"`facerec serve` (SQLite, {model}) on a gallery of {size:,} faces: "
        "grace_hopper.jpg enrolled through the API, the rest synthetic persons of "
        f"{PER_PERSON} faces in her space "
        f"(written offline in {gallery['fill_s']:.0f} s). *ready*: seconds from the process's "
        "start to `/ready` 200 (models loaded, index loaded or exact search serving); *index "
        "s*: of those, the indexes' load (the start's log); *first recognize*: the next "
        "request, with whether it named the person photographed (grace; after a crash, an "
        "astronaut enrolled just before the SIGKILL); *p50*: further recognize calls (new "
        "bytes each, no cache). *index*: what the start's log says. *rows mapped*: the "
        "snapshot's exact rows mapped copy-on-write (`FACEREC_INDEX__HNSW_MMAP_SNAPSHOTS=true`) "
        "instead of read. First start: the graph's snapshot was written "
        f"{gallery['snapshot_s']:.0f} s after the process started (built in the background "
        "while exact search served).",
        "",
        "| start | ready s | index s | first recognize ms | named | p50 ms | index |",
        "|---|---:|---:|---:|---|---:|---|",
    ]
    for s in starts:
        wanted = "astronaut" if s.step.startswith("after a crash") else "grace"
        named = "yes" if s.first_named == wanted else "no"
        p50 = "-" if s.p50_ms is None else f"{s.p50_ms:.1f}"
        index_s = "-" if s.index_s is None else f"{s.index_s:.1f}"
        lines.append(
            f"| {s.step} | {s.ready_s:.1f} | {index_s} | {s.first_ms:.1f} | {named} | {p50} "
            f"| {s.index} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
