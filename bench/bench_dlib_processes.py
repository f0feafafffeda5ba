"""dlib's ResNet in this process or in helper processes (``models.dlib_processes``): recognize
throughput with the default models, how long other requests wait meanwhile, and the memory.

For each setting a fresh ``facerec serve`` (one worker, default models: RetinaFace + dlib)
takes ``--clients`` recognize clients (512 px photos, a new one each call: no cache hit) for
``--seconds`` after a warm-up, while one more connection asks ``/health`` every 5 ms. Reported:
recognize/s, the ``/health`` latencies (an idle server answers in under a millisecond; behind an
embedding that holds the GIL it waits for the whole call), and the RSS of the server and of its
helper processes at the end.

    .venv/bin/python -m bench.bench_dlib_processes [--seconds 15] [--clients 2]
"""

from __future__ import annotations

import argparse
import base64
import json
import threading
import time
from functools import partial

import psutil

from bench.bench_sizes import API, compose
from bench.report import load_average, percentile, write_section
from bench.server import Connection, run_threads, running_server

SETTINGS = (0, 1, 2)
MIB = 1024 * 1024


def measure(processes: int, seconds: float, clients: int) -> dict[str, float]:
    photo = compose(512)
    env = {"FACEREC_AUTH__RATE_PER_SECOND": "0", "FACEREC_MODELS__DLIB_PROCESSES": str(processes)}
    with running_server(env) as server:
        stop = threading.Event()
        done = [0] * clients
        counter = iter(range(1 << 30))

        def body() -> bytes:
            fresh = photo + next(counter).to_bytes(4, "big")  # bytes after the JPEG's end
            return json.dumps({"face_image_base64": base64.b64encode(fresh).decode()}).encode()

        def client(slot: int) -> None:
            conn = Connection(server.port)
            while not stop.is_set():
                if conn.post(API + "/recognize", body(), "application/json") != 200:
                    raise RuntimeError("recognize failed")
                done[slot] += 1

        def health_into(waits: list[float]) -> None:
            conn = Connection(server.port)
            while not stop.is_set():
                started = time.perf_counter()
                conn.get("/health")
                waits.append((time.perf_counter() - started) * 1000)
                time.sleep(0.005)

        warm = Connection(server.port)  # warm-up: the models and every helper used once
        for _ in range(3 * clients):
            warm.post(API + "/recognize", body(), "application/json")
        waits: list[float] = []
        counted = [0]

        def timer() -> None:
            time.sleep(seconds)
            counted[0] = sum(done)
            stop.set()

        run_threads(
            [
                *(partial(client, slot) for slot in range(clients)),
                partial(health_into, waits),
                timer,
            ]
        )
        process = psutil.Process(server.rss.process.pid)
        helpers = process.children(recursive=True)
        return {
            "rate": counted[0] / seconds,
            "p50": percentile(waits, 50),
            "p99": percentile(waits, 99),
            "max": max(waits),
            "server": process.memory_info().rss / MIB,
            "helpers": sum(c.memory_info().rss for c in helpers) / MIB,
        }


def run(args: argparse.Namespace) -> str:
    load_at_start = load_average()
    rows = {processes: measure(processes, args.seconds, args.clients) for processes in SETTINGS}
    base = rows[0]["rate"]
    lines = [
        f"One worker, default models (RetinaFace + dlib), {args.clients} recognize clients "
        f"(512 px, no cache hit) for {args.seconds:g} s, and `/health` every 5 ms from another "
        "connection: what it waited (ms). RSS at the end, MiB. Load average at the start: "
        f"{load_at_start}.",
        "",
        "| `MODELS__DLIB_PROCESSES` | recognize/s | vs in process | /health p50 | p99 | max "
        "| server RSS | helpers' RSS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for processes, row in rows.items():
        label = "0 (in process, the default)" if processes == 0 else str(processes)
        lines.append(
            f"| {label} | {row['rate']:.1f} | {row['rate'] / base:.2f}x | {row['p50']:.1f} "
            f"| {row['p99']:.1f} | {row['max']:.1f} | {row['server']:.0f} | {row['helpers']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print, do not write BENCHMARKS")
    args = parser.parse_args()
    text = run(args)
    print(text)
    if not args.no_write:
        write_section("dlib_processes", "dlib in this process or in helper processes", text)


if __name__ == "__main__":
    main()
