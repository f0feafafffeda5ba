"""HTTP recognize throughput: images/s and latency at 1-16 concurrent clients, 1 and 2 uvicorn
workers, dlib and MobileFaceNet, batching on and off; and how many times one core's images/s two
cores give (``--scaling``).

Each configuration is a real ``facerec serve`` (SQLite, in-process index, two persons enrolled)
pinned to ``--server-cpus``; the clients (threads, one HTTP connection each, closed loop) are
pinned to the other cores when there are any. Every request sends a new image (bytes appended
after the JPEG's end), so the recent-results cache never answers.

    .venv/bin/python -m bench.bench_throughput                 # sweep, ~8 min
    .venv/bin/python -m bench.bench_throughput --scaling       # 1 vs 2 cores, ~5 min
    .venv/bin/python -m bench.bench_throughput --gil           # which steps hold the GIL, ~1 min
    .venv/bin/python -m bench.bench_throughput --seconds 3 --clients 1,8 --workers 1  # quick

``--scaling`` runs, interleaved ``--repeats`` times: the server on 1 core (1 worker, 1 executor
thread), on 2 cores as 2 worker processes, and on 2 cores as 1 worker with 2 executor threads;
every onnxruntime session has 1 intra-op thread. On a machine with fewer than 3 cores the clients
share the server's cores (the table says so): measure on a quiet machine with at least 3.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from tests.images import astronaut_png, grace_hopper_jpeg

from bench.report import percentile, write_section
from bench.server import free_port

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "models"
API = "/api/face-recognition"
# Bytes appended to the JPEG: unique across runs and servers, so no request is a cache hit.
NONCES = itertools.count(time.time_ns())
MOBILEFACENET = ("mobilefacenet", "mobilefacenet_foamliu_opset18.onnx")


@dataclass(frozen=True)
class Config:
    embedder: str
    workers: int = 1
    threads: int = 2  # executor threads per worker
    intra_op: int = 1
    batching: bool = False
    cpus: tuple[int, ...] = (0, 1)

    def env(self, model_dir: Path, tmp: Path) -> dict[str, str]:
        env = {
            "FACEREC_DB__URL": f"sqlite+aiosqlite:///{tmp / 'bench.db'}",
            "FACEREC_SERVER__LOG_DIR": str(tmp / "logs"),
            "FACEREC_SERVER__LOG_LEVEL": "warning",
            "FACEREC_SERVER__WORKERS": str(self.workers),
            "FACEREC_SERVER__EXECUTOR_THREADS": str(self.threads),
            "FACEREC_SERVER__MAX_PENDING_JOBS": "256",
            "FACEREC_AUTH__RATE_PER_SECOND": "0",
            "FACEREC_MODELS__MODEL_DIR": str(model_dir),
            "FACEREC_MODELS__DEFAULT_EMBEDDER": self.embedder,
            "FACEREC_MODELS__PRELOAD": f'["retinaface","{self.embedder}"]',
            "FACEREC_MODELS__INTRA_OP_THREADS": str(self.intra_op),
            "FACEREC_MODELS__BATCHING": "true" if self.batching else "false",
            "FACEREC_INDEX__INDEX_DIR": str(tmp / "index"),
        }
        if self.batching:  # one run per model at a time: concurrent calls queue and batch
            env |= {
                "FACEREC_MODELS__BATCH_CONCURRENCY": "1",
                "FACEREC_MODELS__BATCH_MAX_WAIT_MS": "2",
            }
        return env


@dataclass
class Load:
    clients: int
    images_per_s: float
    p50_ms: float
    p95_ms: float
    errors: int
    cpu_ms_per_image: float = 0.0  # server CPU time (every process) per answered image
    cores_busy: float = 0.0  # server CPU seconds per second of the run


def tree_cpu(pid: int) -> float:
    """CPU seconds used so far by the server and its worker processes."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in (root, *root.children(recursive=True)):
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def tree_rss(pid: int) -> list[tuple[int, int]]:
    """(RSS, PSS) bytes of each process serving: the workers, or the one process."""
    root = psutil.Process(pid)
    procs = [
        p for p in root.children(recursive=True) if "resource_tracker" not in " ".join(p.cmdline())
    ] or [root]
    out = []
    for proc in procs:
        info = proc.memory_full_info()
        out.append((info.rss, getattr(info, "pss", info.rss)))
    return out


@contextmanager
def server(config: Config, model_dir: Path) -> Iterator[tuple[httpx.Client, int]]:
    tmp = Path(tempfile.mkdtemp(prefix="facerec-bench-tp-"))
    port = free_port()
    cpus = set(config.cpus)
    process = subprocess.Popen(
        [sys.executable, "-m", "facerec.cli", "serve", "--port", str(port), "--skip-checks"],
        env=dict(os.environ, **config.env(model_dir, tmp)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            deadline = time.monotonic() + 180
            while True:
                try:
                    if client.get("/ready").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"facerec serve did not become ready: {config}")
                time.sleep(0.2)
            for name, data in (("grace", grace_hopper_jpeg()), ("astronaut", astronaut_png())):
                body = {"person_name": name, "face_image_base64": base64.b64encode(data).decode()}
                client.post(API + "/add-face", json=body).raise_for_status()
            yield client, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


def drive(base_url: str, clients: int, seconds: float, pid: int) -> Load:
    """``clients`` closed-loop clients for ``seconds``; a new image every request."""
    photo = grace_hopper_jpeg()
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]
    stop = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(base_url=base_url, timeout=120) as http:
            while time.monotonic() < stop:
                with lock:
                    nonce = next(NONCES)
                query = base64.b64encode(photo + nonce.to_bytes(8, "little")).decode()
                started = time.perf_counter()
                try:
                    response = http.post(API + "/recognize", json={"face_image_base64": query})
                    status = response.status_code
                except httpx.HTTPError as exc:  # counted as an error, the client goes on
                    status = 0
                    print(f"request failed: {exc!r}", file=sys.stderr)
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    if status == 200:
                        latencies.append(elapsed)
                    else:
                        errors[0] += 1

    started, cpu = time.monotonic(), tree_cpu(pid)
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall, cpu = time.monotonic() - started, tree_cpu(pid) - cpu
    return Load(
        clients,
        len(latencies) / wall,
        percentile(latencies, 50),
        percentile(latencies, 95),
        errors[0],
        cpu * 1000 / max(len(latencies), 1),
        cpu / wall,
    )


def measure(
    config: Config, model_dir: Path, levels: list[int], seconds: float
) -> tuple[list[Load], list[tuple[int, int]]]:
    with server(config, model_dir) as (client, pid):
        base = str(client.base_url)
        drive(base, max(levels) * config.workers, min(seconds, 3.0), pid)  # warm every worker
        loads = [drive(base, n, seconds, pid) for n in levels]
        memory = tree_rss(pid)
    return loads, memory


def pin_clients(server_cpus: tuple[int, ...]) -> str:
    others = sorted(os.sched_getaffinity(0) - set(server_cpus))
    if others:
        os.sched_setaffinity(0, others)
        return f"clients on cores {others}"
    return "clients share the server's cores (fewer than 3 cores here)"


def model_dir_with_packs(tmp: Path) -> Path:
    model_dir = tmp / "models"
    pack, name = MOBILEFACENET
    (model_dir / pack).mkdir(parents=True)
    shutil.copy(SHARED / pack / name, model_dir / pack / name)
    return model_dir


def mib(values: list[tuple[int, int]]) -> str:
    return ", ".join(f"{rss / 2**20:.0f}/{pss / 2**20:.0f}" for rss, pss in values)


def sweep(args: argparse.Namespace, model_dir: Path, where: str) -> str:
    lines = [
        f"recognize of grace_hopper.jpg (512x600, one face, new bytes each call), gallery of 2; "
        f"{args.seconds:g} s per level after a warm-up; server on cores {args.server_cpus}, "
        f"{where}; "
        "executor 2 threads per worker, onnxruntime 1 intra-op thread per session. Batching on: "
        "one run per model at a time, 2 ms wait (`BATCH_CONCURRENCY=1`, `BATCH_MAX_WAIT_MS=2`).",
        "",
        "| embedder | workers | batching | clients | images/s | p50 ms | p95 ms "
        "| server CPU ms/image | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    memory_lines = []
    for embedder in args.embedders:
        for workers in args.workers:
            for batching in args.batching:
                config = Config(embedder, workers=workers, batching=batching, cpus=args.server_cpus)
                loads, memory = measure(config, model_dir, args.clients, args.seconds)
                mode = "on" if batching else "off"
                for load in loads:
                    lines.append(
                        f"| {embedder} | {workers} | {mode} | {load.clients} "
                        f"| {load.images_per_s:.1f} | {load.p50_ms:.0f} | {load.p95_ms:.0f} "
                        f"| {load.cpu_ms_per_image:.0f} | {load.errors} |"
                    )
                    print(lines[-1], flush=True)
                memory_lines.append(
                    f"| {embedder} | {workers} | {'on' if batching else 'off'} | {mib(memory)} |"
                )
    lines += [
        "",
        "Memory of each serving process after the run, RSS / PSS MiB (PSS splits shared pages, "
        "libraries mapped by both workers, between them):",
        "",
        "| embedder | workers | batching | per process RSS/PSS |",
        "|---|---|---|---|",
        *memory_lines,
    ]
    return "\n".join(lines)


def scaling(args: argparse.Namespace, model_dir: Path) -> str:
    cpus = sorted(os.sched_getaffinity(0))[:2]
    one, two = (cpus[0],), tuple(cpus)
    where = pin_clients(two)
    shapes = {
        "1 core: 1 worker x 1 thread": (one, 1, 1),
        "2 cores: 2 workers x 1 thread": (two, 2, 1),
        "2 cores: 1 worker x 2 threads": (two, 1, 2),
    }
    level, starved = [args.scaling_clients], False
    lines = [
        f"recognize images/s with {args.scaling_clients} clients, {args.seconds:g} s per run, "
        f"runs interleaved {args.repeats} times (median shown); onnxruntime 1 intra-op thread, "
        f"batching off; {where}.",
        "",
        "| embedder | server | images/s (runs) | vs 1 core | cores busy | server CPU ms/image |",
        "|---|---|---|---|---|---|",
    ]
    for embedder in args.embedders:
        rates: dict[str, list[Load]] = {name: [] for name in shapes}
        for _ in range(args.repeats):
            for name, (server_cpus, workers, threads) in shapes.items():
                config = Config(embedder, workers=workers, threads=threads, cpus=server_cpus)
                loads, _ = measure(config, model_dir, level, args.seconds)
                rates[name].append(loads[0])
                print(embedder, name, f"{loads[0].images_per_s:.2f}", flush=True)
        base = percentile([r.images_per_s for r in rates["1 core: 1 worker x 1 thread"]], 50)
        for name, runs in rates.items():
            median = percentile([r.images_per_s for r in runs], 50)
            each = ", ".join(f"{r.images_per_s:.1f}" for r in runs)
            busy = percentile([r.cores_busy for r in runs], 50)
            cost = percentile([r.cpu_ms_per_image for r in runs], 50)
            lines.append(
                f"| {embedder} | {name} | {median:.1f} ({each}) | {median / base:.2f}x "
                f"| {busy:.2f} | {cost:.0f} |"
            )
            server_cpus, _, threads = shapes[name]
            # One thread per worker process can keep its core busy whatever holds the GIL (two
            # threads in one process running dlib cannot): there, idle cores mean a shared machine.
            if threads == 1:
                starved = starved or busy < 0.8 * len(server_cpus)
    if starved:
        lines += [
            "",
            "**A server of one thread per worker got far less CPU than the cores it was pinned "
            "to (cores busy): the machine is shared, so these ratios do not measure scaling. "
            "Rerun on a quiet one.**",
        ]
    return "\n".join(lines)


def gil_probe(calls: int = 12) -> str:
    """Whether each blocking step releases the GIL, judged per call so that a busy machine does
    not decide it (a thread-count throughput ratio would)."""
    import io

    import cv2
    from PIL import Image

    from facerec.config import LimitSettings
    from facerec.inference.base import RuntimeOptions
    from facerec.inference.detectors.hog import HogDetector
    from facerec.inference.detectors.retinaface import RetinaFaceDetector
    from facerec.inference.embedders.dlib_resnet import DlibResNetEmbedder
    from facerec.inference.embedders.onnx_embedder import MOBILEFACENET_SPEC, OnnxArcFaceEmbedder
    from facerec.inference.images import decode_image

    runtime = RuntimeOptions(intra_op_threads=1)
    photo = grace_hopper_jpeg()
    image = decode_image(photo, LimitSettings()).pixels
    detector, dlib_model, hog = RetinaFaceDetector(), DlibResNetEmbedder(), HogDetector()
    predictor = DlibResNetEmbedder(alignment="shape_predictor")
    mobile = OnnxArcFaceEmbedder(MOBILEFACENET_SPEC, SHARED)
    for model in (detector, dlib_model, hog, predictor, mobile):
        model.load(runtime)
    faces = detector.detect(image, conf_threshold=0.5, iou_threshold=0.4, max_faces=5)
    chips = dlib_model.chips(image, faces)
    big = cv2.resize(image, (4000, 3000))
    big_jpeg = bytes(cv2.imencode(".jpg", big)[1])
    steps: dict[str, Callable[[], object]] = {
        "onnxruntime: RetinaFace detect (512x600)": lambda: detector.detect(
            image, conf_threshold=0.5, iou_threshold=0.4, max_faces=5
        ),
        "onnxruntime: MobileFaceNet embed (1 face)": lambda: mobile.embed(image, faces),
        "dlib: ResNet compute_face_descriptor (1 chip)": lambda: dlib_model.embed_chips(chips),
        "dlib: HOG detector (512x600)": lambda: hog.detect(
            image, conf_threshold=0.0, iou_threshold=0.4, max_faces=5
        ),
        "dlib: shape predictor + get_face_chip": lambda: predictor.chips(image, faces),
        "OpenCV: resize 4000x3000 -> 1024x768": lambda: cv2.resize(
            big, (1024, 768), interpolation=cv2.INTER_AREA
        ),
        "Pillow: JPEG decode (512x600)": lambda: Image.open(io.BytesIO(photo)).load(),
        "Pillow: JPEG decode (4000x3000)": lambda: Image.open(io.BytesIO(big_jpeg)).load(),
        "facerec decode_image (512x600 JPEG)": lambda: decode_image(photo, LimitSettings()),
        "pure Python loop (reference)": lambda: sum(i * i for i in range(300_000)),
    }
    lines = [
        "A pure-Python heartbeat thread runs beside each step (called "
        f"{calls} times, 1 onnxruntime intra-op thread). A call during which the heartbeat "
        "could not run at all (one stall covering ≥ 80% of the call) held the GIL; a step whose "
        "every call does so holds it. Stalls from a busy machine are random, not per call. Pure "
        "Python code never holds it through a call: the interpreter hands it over every 5 ms.",
        "",
        "| step | ms per call | calls that stalled the heartbeat | longest stall ms | GIL |",
        "|---|---|---|---|---|",
    ]
    for name, step in steps.items():
        for _ in range(2):
            step()
        stop, gaps = threading.Event(), list[tuple[float, float]]()

        def beat(stop: threading.Event = stop, gaps: list[tuple[float, float]] = gaps) -> None:
            last = time.perf_counter()
            while not stop.is_set():
                now = time.perf_counter()
                if now - last > 0.001:
                    gaps.append((last, now))
                last = now

        thread = threading.Thread(target=beat)
        thread.start()
        time.sleep(0.05)
        spans = []
        for _ in range(calls):
            started = time.perf_counter()
            step()
            spans.append((started, time.perf_counter()))
        stop.set()
        thread.join()
        stalled = sum(
            any(min(b, end) - max(a, start) >= 0.8 * (end - start) for a, b in gaps)
            for start, end in spans
        )
        per_call = sum(end - start for start, end in spans) / calls * 1000
        longest = max((b - a for a, b in gaps), default=0.0) * 1000
        held = "held" if stalled == calls else "not held" if stalled <= calls // 4 else "unclear"
        lines.append(f"| {name} | {per_call:.1f} | {stalled}/{calls} | {longest:.1f} | {held} |")
        print(lines[-1], flush=True)
    lines += ["", *batch_gain(dlib_model, image, faces)]
    return "\n".join(lines)


def batch_gain(dlib_model: Any, image: Any, faces: Any, size: int = 8) -> list[str]:
    """Does a batched run save time on CPU? One run of ``size`` chips against ``size`` runs of
    one, interleaved, for dlib and w600k_mbf (a graph that takes any batch size)."""
    from facerec.inference.base import RuntimeOptions
    from facerec.inference.embedders.onnx_embedder import W600K_MBF_SPEC, OnnxArcFaceEmbedder

    w600k = OnnxArcFaceEmbedder(
        W600K_MBF_SPEC, SHARED, model_path=SHARED / "arcface" / "w600k_mbf_fp32_from_int8.onnx"
    )
    w600k.load(RuntimeOptions(intra_op_threads=1))
    out = [
        f"One run of {size} chips against {size} runs of one chip (time of the singles / time of "
        "the batch, 3 interleaved rounds; above 1: batching saves time):",
        "",
        "| embedder | singles / batch |",
        "|---|---|",
    ]
    for name, model in (("dlib_resnet", dlib_model), ("w600k_mbf", w600k)):
        chips = model.chips(image, faces[:1]) * size
        ratios = []
        for _ in range(3):
            started = time.perf_counter()
            for chip in chips:
                model.embed_chips([chip])
            singles = time.perf_counter() - started
            started = time.perf_counter()
            model.embed_chips(chips)
            ratios.append(singles / (time.perf_counter() - started))
        out.append(f"| {name} | {', '.join(f'{r:.2f}' for r in ratios)} |")
        print(out[-1], flush=True)
    return out


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def cores(text: str) -> tuple[int, ...]:
    return tuple(ints(text))


def names(text: str) -> list[str]:
    return text.split(",")


def switches(text: str) -> list[bool]:
    return [x == "on" for x in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=ints, default=[1, 2, 4, 8, 16])
    parser.add_argument("--workers", type=ints, default=[1, 2])
    parser.add_argument("--embedders", type=names, default=["dlib_resnet", "mobilefacenet"])
    parser.add_argument("--batching", type=switches, default=[False, True], help="off,on")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--server-cpus", type=cores, default=(0, 1))
    parser.add_argument("--scaling", action="store_true", help="1 vs 2 cores instead of the sweep")
    parser.add_argument("--gil", action="store_true", help="which steps release the GIL")
    parser.add_argument("--scaling-clients", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="facerec-bench-tp-models-"))
    try:
        model_dir = model_dir_with_packs(tmp)
        if args.gil:
            body = gil_probe()
            write_section("throughput-gil", "Which blocking steps release the GIL", body)
        elif args.scaling:
            body = scaling(args, model_dir)
            print(body)
            write_section("throughput-scaling", "Throughput: one core vs two", body)
        else:
            body = sweep(args, model_dir, pin_clients(args.server_cpus))
            print(body)
            write_section("throughput", "Recognize throughput (clients x workers x batching)", body)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
