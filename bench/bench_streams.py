"""Live video over ``/ws/recognize``: frames per second and end-to-end latency per frame, at 1
and 4 sockets, against a real ``facerec serve`` process.

Frames: Grace Hopper (enrolled) moving across a grey 640x480 canvas, JPEG. *Closed loop*: each
socket sends a frame, waits for its result, sends the next (no drops: the service's throughput
and the latency of one frame through it). *Flood*: one socket sends at a fixed rate faster than
the service can process; the newest frame wins, the rest are dropped and counted, and the
latency of the processed frames stays that of one frame instead of growing with a queue.

    .venv/bin/python -m bench.bench_streams [--seconds 20] [--flood-fps 60]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

from PIL import Image
from tests.images import grace_hopper_jpeg, grace_hopper_rgb
from websockets.sync.client import ClientConnection, connect

from bench.report import percentile, write_section
from bench.server import run_threads, running_server

FRAMES = 12


def make_frames() -> list[bytes]:
    photo = Image.fromarray(grace_hopper_rgb())
    photo = photo.resize((photo.width * 2 // 5, photo.height * 2 // 5))
    frames = []
    for i in range(FRAMES):
        canvas = Image.new("RGB", (640, 480), (120, 120, 120))
        canvas.paste(photo, (40 + 30 * i, 80 + 5 * i))
        buffer = io.BytesIO()
        canvas.save(buffer, format="JPEG", quality=85)
        frames.append(buffer.getvalue())
    return frames


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)  # ms, per processed frame
    processed: int = 0
    dropped: int = 0
    sent: int = 0
    faces_named: int = 0


@contextmanager
def open_socket(url: str) -> Iterator[ClientConnection]:
    with connect(url, max_size=None) as ws:
        ws.send(json.dumps({"type": "config", "collection": "default"}))
        ready = json.loads(ws.recv())
        assert ready["type"] == "ready", ready
        yield ws


def closed_loop(url: str, frames: list[bytes], seconds: float, run: Run) -> None:
    with open_socket(url) as ws:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            ws.send(frames[run.sent % len(frames)])
            run.sent += 1
            result = json.loads(ws.recv())
            assert result["type"] == "result", result
            run.latencies.append((time.perf_counter() - started) * 1000)
            run.processed += 1
            run.dropped = result["dropped"]
            run.faces_named += sum(1 for f in result["faces"] if f["person_id"])


def flood(url: str, frames: list[bytes], seconds: float, fps: float, run: Run) -> None:
    sent_at: dict[int, float] = {}
    with open_socket(url) as ws:

        def reader() -> None:
            while True:
                try:
                    result = json.loads(ws.recv())
                except Exception:
                    return
                if result.get("type") != "result":
                    continue
                run.latencies.append((time.perf_counter() - sent_at[result["frame"]]) * 1000)
                run.processed += 1
                run.dropped = result["dropped"]

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        interval = 1.0 / fps
        deadline = time.monotonic() + seconds
        next_at = time.monotonic()
        while time.monotonic() < deadline:
            run.sent += 1
            sent_at[run.sent] = time.perf_counter()
            ws.send(frames[run.sent % len(frames)])
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        time.sleep(1.0)  # the last processed frame's answer
    thread.join(timeout=2)


def measure(url: str, frames: list[bytes], sockets: int, seconds: float) -> tuple[list[Run], float]:
    runs = [Run() for _ in range(sockets)]
    wall = run_threads([partial(closed_loop, url, frames, seconds, run) for run in runs])
    return runs, wall


def row(label: str, runs: list[Run], elapsed: float) -> str:
    latencies = [ms for run in runs for ms in run.latencies]
    processed = sum(run.processed for run in runs)
    sent = sum(run.sent for run in runs)
    dropped = sum(run.dropped for run in runs)
    fps = processed / elapsed
    return (
        f"| {label} | {len(runs)} | {sent} | {processed} | {dropped} | {fps:.1f} | "
        f"{fps / len(runs):.1f} | {percentile(latencies, 50):.0f} / "
        f"{percentile(latencies, 95):.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--flood-fps", type=float, default=60.0)
    args = parser.parse_args()
    frames = make_frames()
    # max_fps high enough not to throttle: the service's own throughput is measured.
    env = {"FACEREC_STREAMS__MAX_FPS": "1000", "FACEREC_SERVER__WORKERS": "1"}
    with running_server(env) as server:
        photo = base64.b64encode(grace_hopper_jpeg()).decode()
        server.client.post(
            "/api/face-recognition/add-face",
            json={"person_name": "Grace Hopper", "face_image_base64": photo},
        ).raise_for_status()
        url = str(server.client.base_url).replace("http://", "ws://") + "/ws/recognize"
        measure(url, frames, 1, 2.0)  # warm-up: models loaded, first frames
        rows = []
        for sockets in (1, 4):
            runs, elapsed = measure(url, frames, sockets, args.seconds)
            assert all(run.faces_named for run in runs), "the enrolled face was never named"
            rows.append(row("closed loop", runs, elapsed))
        flooded = Run()
        started = time.perf_counter()
        flood(url, frames, args.seconds / 2, args.flood_fps, flooded)
        rows.append(
            row(f"flood at {args.flood_fps:g} fps", [flooded], time.perf_counter() - started)
        )
        peak = server.rss.peak
    body = "\n".join(
        [
            f"640x480 JPEG frames ({len(frames[0]) // 1024} KiB), one enrolled face moving across "
            f"them; {args.seconds:g} s per closed-loop run, {args.seconds / 2:g} s of flood; "
            "default models (RetinaFace + dlib ResNet), `server.executor_threads` 2, "
            "`streams.max_fps` 1000 (no throttle). Latency: from sending a frame to its result, "
            "milliseconds.",
            "",
            "| mode | sockets | frames sent | processed | dropped | fps (all) | fps per socket "
            "| latency p50 / p95 ms |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"Server peak RSS {peak / 2**20:.0f} MiB. In the flood every frame is answered or "
            "counted as dropped (newest wins); processed frames' latency stays near one frame's "
            "processing time because nothing queues.",
        ]
    )
    print(body)
    write_section("streams", "Live video: /ws/recognize frames per second and latency", body)


if __name__ == "__main__":
    main()
