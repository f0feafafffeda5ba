"""Large request bodies: would a larger uvicorn read buffer take them in faster?

uvicorn (httptools) stops reading a connection once the body buffered for the app passes
``HIGH_WATER_LIMIT`` (64 KiB) and reads on when the app takes it, so a 2 MB base64 photo reaches
the app in a dozen or more messages, one event-loop round trip each. A buffer sized by the number
of open connections (a memory budget they share) would let a lone connection buffer a whole
photo. Its best case is one connection with a large buffer, measured here against uvicorn's
default on the real service:

- one ``facerec serve`` per buffer size, started through this script (``--launch N``), which
  sets uvicorn's ``HIGH_WATER_LIMIT`` to N and runs facerec's command line;
- ``/recognize`` with the same photo again (the recent-results cache answers: the body's
  transfer, parsing and hashing are most of what is left), the servers taken in turn each round.

    python bench/bench_body.py --rounds 40
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from tests.images import grace_hopper_jpeg

from bench.bench_sizes import API, compose
from bench.report import load_average, percentile, write_section
from bench.server import running_server

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BUFFER = 64 * 1024  # uvicorn's HIGH_WATER_LIMIT
BUFFERS = (DEFAULT_BUFFER, 1024 * 1024, 16 * 1024 * 1024)
SIZES = (512, 1920, 4000)


def launch(argv: list[str]) -> int:
    """``--launch N <facerec arguments>``: facerec's command line with uvicorn's read buffer at
    N bytes (workers=1: uvicorn serves in this process, so the setting holds)."""
    from uvicorn.protocols.http import httptools_impl

    from facerec.cli import main as facerec_main

    # The module reads its own global on every body chunk; setattr: it is not exported.
    setattr(httptools_impl, "HIGH_WATER_LIMIT", int(argv[0]))  # noqa: B010
    return facerec_main(argv[1:])


def label(buffer: int) -> str:
    size = f"{buffer // 1024} KiB" if buffer < 2**20 else f"{buffer // 2**20} MiB"
    return size + (" (uvicorn's default)" if buffer == DEFAULT_BUFFER else "")


def run(args: argparse.Namespace) -> str:
    load_at_start = load_average()
    env = {
        "FACEREC_AUTH__RATE_PER_SECOND": "0",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    samples: dict[tuple[int, int], list[float]] = {}
    body_mb: dict[int, float] = {}
    with ExitStack() as stack:
        clients = {
            buffer: stack.enter_context(
                running_server(env, launcher=("-m", "bench.bench_body", "--launch", str(buffer)))
            ).client
            for buffer in BUFFERS
        }
        face = base64.b64encode(grace_hopper_jpeg()).decode()
        for client in clients.values():
            client.post(API + "/add-face", json={"person_name": "grace", "face_image_base64": face})
        for size in SIZES:
            body = json.dumps(
                {"face_image_base64": base64.b64encode(compose(size)).decode()}
            ).encode()
            body_mb[size] = len(body) / 1e6
            headers = {"content-type": "application/json"}
            for round_no in range(args.warmup + args.rounds):
                for buffer, client in clients.items():
                    started = time.perf_counter()
                    response = client.post(API + "/recognize", content=body, headers=headers)
                    elapsed = (time.perf_counter() - started) * 1000
                    response.raise_for_status()
                    if round_no >= args.warmup:
                        samples.setdefault((size, buffer), []).append(elapsed)
            print(f"{size} px done", flush=True)
    lines = [
        "One `facerec serve` (default settings, one worker) per uvicorn read buffer "
        "(`HIGH_WATER_LIMIT`), each sent the same recognize again and again (base64 JSON body; "
        "the recent-results cache answers, so what is left is mostly the body: its transfer, "
        f"parsing, decoding and hashing). {args.rounds} rounds after {args.warmup} warm-up "
        "rounds, the servers taken in turn; milliseconds p50 at the client. Load average at "
        f"the start: {load_at_start}.",
        "",
        "| photo | body MB | " + " | ".join(f"buffer {label(b)}" for b in BUFFERS) + " |",
        "|---:|---:|" + "---:|" * len(BUFFERS),
    ]
    for size in SIZES:
        base = percentile(samples[(size, DEFAULT_BUFFER)], 50)
        cells = []
        for buffer in BUFFERS:
            p50 = percentile(samples[(size, buffer)], 50)
            ratio = "" if buffer == DEFAULT_BUFFER else f" ({p50 / base:.2f}x)"
            cells.append(f"{p50:.2f}{ratio}")
        lines.append(f"| {size} px | {body_mb[size]:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--launch":
        sys.exit(launch(sys.argv[2:]))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print, do not write BENCHMARKS")
    args = parser.parse_args()
    body = run(args)
    print(body)
    if not args.no_write:
        write_section("body", "Request bodies: uvicorn's read buffer vs larger ones", body)


if __name__ == "__main__":
    main()
