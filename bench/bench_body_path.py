"""What a large request body costs, and how long it holds the event loop: the body path as it
was against now, side by side on the real service.

- *before*: ``facerec serve`` launched through this script (``--launch-before``) with the
  earlier steps put back: every base64 text through the full decoding path (an ASCII copy, a
  search for each whitespace byte, then the decoder), the photo's SHA-256 (the recent-results
  cache key) computed on the event loop, and an ``Idempotency-Key``'s request digest made from
  ``json.dumps`` of the whole request, on the event loop, and an uploaded file over 1 MiB
  spooled to disk by Starlette, then read back in 1 MiB pieces;
- *now*: ``facerec serve`` as it is (plain base64 decoded in one pass; a photo over 1 MiB
  hashed in a worker thread, where hashlib releases the GIL; the request digest in a worker
  thread, long base64 hashed as it is; uploads up to the limit kept in memory, read at once).

Two measurements, the servers taken in turn:

1. a recognize of the same photo again and again (base64 JSON, or a multipart upload; the
   recent-results cache answers, so what is left is the body: its transfer, parsing, decoding
   and hashing), and of a 14 MB body that is no image (refused after it is decoded and hashed:
   400 ``invalid_image``);
2. ``/health`` every millisecond from a second connection while the 14 MB bodies are sent one
   after another (to recognize, and to add-face with an ``Idempotency-Key``): how long the
   event loop kept other requests waiting.

    python -m bench.bench_body_path --rounds 40 --stall-rounds 4
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
from tests.images import grace_hopper_jpeg

from bench.bench_body import ROOT
from bench.bench_sizes import API, compose
from bench.report import load_average, percentile, write_section
from bench.server import Connection, multipart_body, running_server

SERVERS = ("before", "now")
SIZES = (512, 1920, 4000)
NOT_AN_IMAGE = 14_000_000  # bytes: a body near the 15 MiB upload limit
JUNK = "14 MB, no image"
KEYED = "add-face with an Idempotency-Key, 14 MB, no image"


def launch_before(argv: list[str]) -> int:
    """``--launch-before <facerec arguments>``: facerec's command line with the earlier body path
    (workers=1: uvicorn serves in this process, so the patches hold)."""
    from facerec import app
    from facerec.api import idempotency, uploads
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

    async def read_in_pieces(upload: Any, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while chunk := await upload.read(1 << 20):
            size += len(chunk)
            if size > limit:
                raise RuntimeError("too large")
            chunks.append(chunk)
        return b"".join(chunks)

    def spooled_as_starlette_does(limit: int) -> None:
        return None

    setattr(image_formats, "_plain_base64", full_path_only)  # noqa: B010
    setattr(queries, "image_key_digest", digest_on_the_loop)  # noqa: B010
    setattr(idempotency, "fingerprint", fingerprint_on_the_loop)  # noqa: B010
    setattr(uploads, "read_upload", read_in_pieces)  # noqa: B010
    setattr(app, "keep_uploads_in_memory", spooled_as_starlette_does)  # noqa: B010
    return facerec_main(argv)


@dataclass(frozen=True)
class Case:
    label: str
    path: str
    body: bytes
    content_type: str = "application/json"
    expect: int = 200
    keyed: bool = False  # a new Idempotency-Key each time

    def send(self, conn: Connection) -> float:
        key = uuid.uuid4().hex if self.keyed else None
        started = time.perf_counter()
        status = conn.post(self.path, self.body, self.content_type, key)
        elapsed = (time.perf_counter() - started) * 1000
        if status != self.expect:
            raise RuntimeError(f"{self.label}: {self.path} answered {status}, not {self.expect}")
        return elapsed


def json_case(label: str, data: bytes, expect: int = 200, keyed: bool = False) -> Case:
    fields = {"face_image_base64": base64.b64encode(data).decode()}
    if keyed:
        fields["person_name"] = "junk"
    path = API + ("/add-face" if keyed else "/recognize")
    return Case(label, path, json.dumps(fields).encode(), expect=expect, keyed=keyed)


def upload_case(label: str, data: bytes, expect: int = 200) -> Case:
    body, content_type = multipart_body(data)
    return Case(label, API + "/recognize-upload", body, content_type, expect)


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
    noise = [bytes([0xAB]) + rng.integers(0, 256, NOT_AN_IMAGE, dtype=np.uint8).tobytes()]
    noise.append(noise[0][::-1])
    cases = [json_case(f"{size} px", compose(size)) for size in SIZES]
    cases.append(upload_case("4000 px, upload", compose(4000)))
    cases.append(json_case(JUNK, noise[0], 400))
    cases.append(upload_case(JUNK + ", upload", noise[0], 400))
    cases.append(json_case(KEYED, noise[0], 400, keyed=True))
    # What the event loop is asked to wait behind: the two kinds of 14 MB body, each in turn.
    stall_kinds = {
        "recognize": [json_case(JUNK, data, 400) for data in noise],
        KEYED: [json_case(KEYED, data, 400, keyed=True) for data in noise],
    }
    samples: dict[tuple[str, str], list[float]] = {}
    stalls: dict[tuple[str, str], list[float]] = {}
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
            ports[name] = server.port
        conns = {name: Connection(port) for name, port in ports.items()}
        for case in cases:
            for round_no in range(args.warmup + args.rounds):
                for name in SERVERS:
                    elapsed = case.send(conns[name])
                    if round_no >= args.warmup:
                        samples.setdefault((case.label, name), []).append(elapsed)
            print(f"{case.label} done", flush=True)
        for _ in range(args.stall_rounds):
            for name in SERVERS:
                for kind, bodies in stall_kinds.items():

                    def send(
                        conn: Connection = conns[name], bodies: list[Case] = bodies
                    ) -> Iterator[None]:
                        for i in range(args.stall_bodies):
                            bodies[i % len(bodies)].send(conn)
                            yield None

                    stalls.setdefault((name, kind), []).extend(health_while(ports[name], send()))
        print("stalls done", flush=True)
    body_mb = {case.label: len(case.body) / 1e6 for case in cases}
    lines = [
        "*before*: the service launched with the earlier body path put back (every base64 text "
        "through the full decoding path; the photo's SHA-256, the cache key, on the event loop; "
        "an Idempotency-Key's request digest from `json.dumps` of the whole request, on the "
        "event loop); *now*: as it is (plain base64 in one pass; a photo over 1 MiB hashed in "
        "a worker thread; the request digest in a worker thread, long base64 hashed as it is; "
        "uploads kept in memory up to the limit, where Starlette spooled a file over 1 MiB to "
        "disk). "
        "Both one worker, default settings, taken in turn. Client: the standard "
        "library's `http.client` on a kept-alive connection. Load average at the start: "
        f"{load_at_start}.",
        "",
        f"Recognize, the same body again and again ({args.rounds} rounds after {args.warmup} "
        "warm-up rounds; base64 JSON, or the file itself to /recognize-upload (multipart); a "
        "photo is answered by the recent-results cache, the 14 MB body of "
        "random bytes is refused as no image after it is decoded and hashed; with an "
        "Idempotency-Key, a new one each time, the add-face is refused after its request "
        "digest is made and stored), milliseconds p50:",
        "",
        "| body | MB | before | now | now / before |",
        "|---|---:|---:|---:|---:|",
    ]
    for case in cases:
        before = percentile(samples[(case.label, "before")], 50)
        now = percentile(samples[(case.label, "now")], 50)
        lines.append(
            f"| {case.label} | {body_mb[case.label]:.2f} | {before:.2f} | {now:.2f} | "
            f"{now / before:.2f} |"
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
    for kind in stall_kinds:
        for name in SERVERS:
            lat = stalls[(name, kind)]
            lines.append(
                f"| {kind} | {name} | {len(lat)} | "
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
