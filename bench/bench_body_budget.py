"""Many large bodies at once: the peak memory of one worker with the in-flight body budget
(``limits.max_body_bytes_in_flight``, 128 MiB by default) and without it (set past anything
sent), and what the clients got.

Each of ``--clients`` threads sends ``--bodies`` recognize requests one after another, every one
a ~19 MB JSON body (14 MB of random bytes in base64: no image, refused with 400 once received,
parsed and decoded), on its own kept-alive connection; the clients start together, so their
bodies arrive and are held at the same time. A 429 is counted and not retried. The server's
peak RSS (sampled every 50 ms) is taken over the burst, against its RSS before it and 5 s after
it (what the allocator gave back).

    .venv/bin/python -m bench.bench_body_budget [--clients 24] [--bodies 3]
"""

from __future__ import annotations

import argparse
import base64
import json
import threading
import time
from collections import Counter

import numpy as np
import psutil

from bench.bench_sizes import API
from bench.report import load_average, write_section
from bench.server import Connection, run_threads, running_server

NOT_AN_IMAGE = 14_000_000  # bytes, base64-encoded into the body: ~19 MB
UNBOUNDED = 1 << 40
MIB = 1024 * 1024
SETTLE_S = 5.0  # after the burst, before the RSS is read again


def burst(port: int, body: bytes, clients: int, bodies: int) -> tuple[Counter[int], float]:
    """Statuses of every request, and the burst's wall time in seconds."""
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def client() -> None:
        conn = Connection(port)
        start.wait()
        for _ in range(bodies):
            try:
                status = conn.post(API + "/recognize", body, "application/json")
            except OSError:  # a refused body's connection is closed: open another
                status, conn = -1, Connection(port)
            with lock:
                statuses[status] += 1

    return statuses, run_threads([client] * clients)


def run(args: argparse.Namespace) -> str:
    load_at_start = load_average()
    noise = np.random.default_rng(0).integers(0, 256, NOT_AN_IMAGE, dtype=np.uint8).tobytes()
    body = json.dumps({"face_image_base64": base64.b64encode(noise).decode()}).encode()
    rows = []
    for label, budget in (("128 MiB (default)", None), ("none", UNBOUNDED)):
        env = {"FACEREC_AUTH__RATE_PER_SECOND": "0"}
        if budget is not None:
            env["FACEREC_LIMITS__MAX_BODY_BYTES_IN_FLIGHT"] = str(budget)
        with running_server(env) as server:
            idle = psutil.Process(server.rss.process.pid).memory_info().rss
            server.rss.peak = 0
            statuses, seconds = burst(server.port, body, args.clients, args.bodies)
            peak = server.rss.peak
            health = server.client.get("/health").status_code
            time.sleep(SETTLE_S)
            after = psutil.Process(server.rss.process.pid).memory_info().rss
        rows.append((label, idle, peak, after, statuses, seconds, health))
        print(f"{label}: {dict(statuses)} peak {peak / MIB:.0f} MiB", flush=True)
    lines = [
        f"{args.clients} clients at once, each sending {args.bodies} recognize bodies of "
        f"{len(body) / 1e6:.1f} MB (random bytes in base64: 400 once decoded) one after another "
        "on its own connection; one worker, default settings otherwise. RSS of the server "
        "process before the burst, its peak during it (sampled every 50 ms) and 5 s after it; "
        "statuses as the "
        "clients got them (429: the budget cut the body off; -1: the connection was closed "
        f"under the client). Load average at the start: {load_at_start}.",
        "",
        "| in-flight budget | RSS before MiB | peak RSS MiB | RSS 5 s after MiB | 400 | 429 "
        "| other | seconds | /health after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, idle, peak, after, statuses, seconds, health in rows:
        other = sum(n for status, n in statuses.items() if status not in (400, 429))
        lines.append(
            f"| {label} | {idle / MIB:.0f} | {peak / MIB:.0f} | {after / MIB:.0f} "
            f"| {statuses[400]} | {statuses[429]} | {other} | {seconds:.1f} | {health} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=24)
    parser.add_argument("--bodies", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print, do not write BENCHMARKS")
    args = parser.parse_args()
    text = run(args)
    print(text)
    if not args.no_write:
        write_section("body_budget", "Many large bodies at once: the in-flight body budget", text)


if __name__ == "__main__":
    main()
