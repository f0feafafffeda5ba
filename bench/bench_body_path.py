"""What a large request body costs, and how long it holds the event loop: the body path as it
was against now, side by side on the real service.

- *before*: ``facerec serve`` launched through this script (``--launch-before``) with the
  earlier steps put back: every base64 text through the full decoding path (an ASCII copy, a
  search for each whitespace byte, then the decoder), the photo's SHA-256 (the recent-results
  cache key) computed on the event loop, and an ``Idempotency-Key``'s request digest made from
  ``json.dumps`` of the whole request, on the event loop;
- *now*: ``facerec serve`` as it is (plain base64 decoded in one pass; a photo over 256 KiB
  hashed in a worker thread, where hashlib releases the GIL; the request digest in a worker
  thread, long base64 hashed as it is).

Two measurements, the servers taken in turn:

1. a recognize of the same photo again and again (base64 JSON; the recent-results cache
   answers, so what is left is the body: its transfer, parsing, decoding and hashing), and of a
   14 MB body that is no image (refused after it is decoded and hashed: 400 ``invalid_image``);
2. ``/health`` every millisecond from a second connection while the 14 MB bodies are sent one
   after another (to recognize, and to add-face with an ``Idempotency-Key``): how long the
   event loop kept other requests waiting.

    python -m bench.bench_body_path --rounds 30
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import numpy as np
from tests.images import grace_hopper_jpeg

from bench.bench_body import ROOT
from bench.bench_sizes import API, compose
from bench.report import load_average, percentile, write_section
from bench.server import running_server

SERVERS = ("before", "now")
SIZES = (512, 1920, 4000)
NOT_AN_IMAGE = 14_000_000  # bytes: a body near the 15 MiB upload limit
KEYED = "add-face with an Idempotency-Key, 14 MB, no image"


def launch_before(argv: list[str]) -> int:
    """``--launch-before <facerec arguments>``: facerec's command line with the earlier body path
    (workers=1: uvicorn serves in this process, so the patches hold)."""
    from facerec.api import idempotency
    from facerec.cli import main as facerec_main
    from facerec.domain import queries
    from facerec.domain.probes import image_digest
    from facerec.inference import image_formats

    async def fingerprint_on_the_loop(route: str, request: Any, *uploads: Any) -> str:
        dumped = request.model_dump(mode="json")
        fields = json.dumps(dumped, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        digest = hashlib.sha256(f"{route}\n{fields}\n".encode())
        for upload in uploads:
            file_digest = hashlib.sha256()
            await upload.seek(0)
            while chunk := await upload.read(1 << 20):
                file_digest.update(chunk)
            await upload.seek(0)
            digest.update(file_digest.digest())
        return digest.hexdigest()

    async def digest_on_the_loop(data: bytes) -> str:
        return image_digest(data)

    def full_path_only(text: str, limits: object) -> None:
        return None

    setattr(image_formats, "_plain_base64", full_path_only)  # noqa: B010
    setattr(queries, "image_key_digest", digest_on_the_loop)  # noqa: B010
    setattr(idempotency, "fingerprint", fingerprint_on_the_loop)  # noqa: B010
    return facerec_main(argv)


class Connection:
    """A kept-alive HTTP/1.1 connection (the standard library's client: little work of its own
    per request, unlike httpx)."""

    def __init__(self, port: int) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def post(self, path: str, body: bytes, key: str | None = None) -> int:
        headers = {"content-type": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        self._conn.request("POST", path, body=body, headers=headers)
        response = self._conn.getresponse()
        response.read()
        return response.status

    def get(self, path: str) -> int:
        self._conn.request("GET", path)
        response = self._conn.getresponse()
        response.read()
        return response.status


def recognize_body(data: bytes) -> bytes:
    return json.dumps({"face_image_base64": base64.b64encode(data).decode()}).encode()


def enroll_body(data: bytes) -> bytes:
    return json.dumps(
        {"person_name": "junk", "face_image_base64": base64.b64encode(data).decode()}
    ).encode()


def timed(conn: Connection, body: bytes, expect: int, enroll: bool = False) -> float:
    """A recognize, or with ``enroll`` an add-face under a new ``Idempotency-Key``."""
    path, key = (API + "/add-face", uuid.uuid4().hex) if enroll else (API + "/recognize", None)
    started = time.perf_counter()
    status = conn.post(path, body, key)
    elapsed = (time.perf_counter() - started) * 1000
    if status != expect:
        raise RuntimeError(f"{path} answered {status}, not {expect}")
    return elapsed


def health_while(port: int, send: Iterator[None]) -> list[float]:
    """``/health`` latencies (ms), polled every millisecond while ``send`` runs to its end."""
    stop = threading.Event()
    latencies: list[float] = []

    def poll() -> None:
        conn = Connection(port)
        while not stop.is_set():
            started = time.perf_counter()
            conn.get("/health")
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(0.001)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        for _ in send:
            pass
    finally:
        stop.set()
        poller.join()
    return latencies


def run(args: argparse.Namespace) -> str:
    load_at_start = load_average()
    env = {
        "FACEREC_AUTH__RATE_PER_SECOND": "0",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, NOT_AN_IMAGE, dtype=np.uint8).tobytes() for _ in range(2)]
    junk = [recognize_body(bytes([0xAB]) + data) for data in noise]
    junk_enrollments = [enroll_body(bytes([0xAB]) + data) for data in noise]
    photos = {size: recognize_body(compose(size)) for size in SIZES}
    samples: dict[tuple[str, str], list[float]] = {}
    stalls: dict[tuple[str, bool], list[float]] = {}
    with ExitStack() as stack:
        ports = {}
        for name in SERVERS:
            launcher: tuple[str, ...] = ("-m", "facerec.cli")
            if name == "before":
                launcher = ("-m", "bench.bench_body_path", "--launch-before")
            server = stack.enter_context(running_server(env, launcher=launcher))
            face = base64.b64encode(grace_hopper_jpeg()).decode()
            grace = {"person_name": "grace", "face_image_base64": face}
            server.client.post(API + "/add-face", json=grace).raise_for_status()
            ports[name] = int(str(server.client.base_url).rstrip("/").rsplit(":", 1)[1])
        conns = {name: Connection(port) for name, port in ports.items()}
        cases = [(f"{size} px", body, 200, False) for size, body in photos.items()]
        cases.append(("14 MB, no image", junk[0], 400, False))
        cases.append((KEYED, junk_enrollments[0], 400, True))
        for case, body, expect, enroll in cases:
            for round_no in range(args.warmup + args.rounds):
                for name in SERVERS:
                    elapsed = timed(conns[name], body, expect, enroll)
                    if round_no >= args.warmup:
                        samples.setdefault((case, name), []).append(elapsed)
            print(f"{case} done", flush=True)
        for _ in range(args.stall_rounds):
            for name in SERVERS:
                for enroll in (False, True):
                    bodies = junk_enrollments if enroll else junk

                    def send(name: str = name, bodies: list[bytes] = bodies) -> Iterator[None]:
                        for i in range(args.stall_bodies):
                            timed(conns[name], bodies[i % 2], 400, bodies is junk_enrollments)
                            yield None

                    stalls.setdefault((name, enroll), []).extend(health_while(ports[name], send()))
        print("stalls done", flush=True)
    body_mb = {case: len(body) / 1e6 for case, body, _, _ in cases}
    lines = [
        "*before*: the service launched with the earlier body path put back (every base64 text "
        "through the full decoding path; the photo's SHA-256, the cache key, on the event loop; "
        "an Idempotency-Key's request digest from `json.dumps` of the whole request, on the "
        "event loop); *now*: as it is (plain base64 in one pass; a photo over 256 KiB hashed in "
        "a worker thread; the request digest in a worker thread, long base64 hashed as it is). "
        "Both one worker, default settings, taken in turn. Client: the standard "
        "library's `http.client` on a kept-alive connection. Load average at the start: "
        f"{load_at_start}.",
        "",
        f"Recognize, the same body again and again ({args.rounds} rounds after {args.warmup} "
        "warm-up rounds; a photo is answered by the recent-results cache, the 14 MB body of "
        "random bytes is refused as no image after it is decoded and hashed; with an "
        "Idempotency-Key, a new one each time, the add-face is refused after its request "
        "digest is made and stored), milliseconds p50:",
        "",
        "| body | MB | before | now | now / before |",
        "|---|---:|---:|---:|---:|",
    ]
    for case, _, _, _ in cases:
        before = percentile(samples[(case, "before")], 50)
        now = percentile(samples[(case, "now")], 50)
        lines.append(
            f"| {case} | {body_mb[case]:.2f} | {before:.2f} | {now:.2f} | {now / before:.2f} |"
        )
    lines += [
        "",
        f"`/health` every millisecond from a second connection while {args.stall_bodies} of the "
        "14 MB bodies are sent one after another, to recognize and to add-face with an "
        f"Idempotency-Key, {args.stall_rounds} times per server: how long "
        "other requests waited (milliseconds; the idle server answers in ~0.5). What is left "
        "is mostly work that holds the GIL in a worker thread (joining and parsing the JSON "
        "body, decoding the base64) and the event loop's own handling of 19 MB of body.",
        "",
        "| bodies to | server | polls | p50 | p99 | max | over 5 ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for enroll in (False, True):
        for name in SERVERS:
            lat = stalls[(name, enroll)]
            lines.append(
                f"| {KEYED if enroll else 'recognize'} | {name} | {len(lat)} | "
                f"{percentile(lat, 50):.2f} | {percentile(lat, 99):.2f} | {max(lat):.2f} | "
                f"{sum(x > 5 for x in lat)} |"
            )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--launch-before":
        sys.exit(launch_before(sys.argv[2:]))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--stall-rounds", type=int, default=3)
    parser.add_argument("--stall-bodies", type=int, default=10)
    parser.add_argument("--no-write", action="store_true", help="print, do not write BENCHMARKS")
    args = parser.parse_args()
    body = run(args)
    print(body)
    if not args.no_write:
        write_section(
            "body_path", "Request bodies: what the body path costs, and the event loop", body
        )


if __name__ == "__main__":
    main()
