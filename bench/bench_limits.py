"""Peak memory of one request, per request class, in a real ``facerec serve`` process.

Each request is measured alone: the kernel's peak-RSS mark of the server (``VmHWM``) is reset
just before it (``/proc/PID/clear_refs``), so the figure is the request's own peak growth over
the resident size it started from, not a sampled approximation.

    python bench/bench_limits.py [--runs 3] [--no-write]
"""

from __future__ import annotations

import argparse
import base64
import io
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.api.bombs import png
from tests.images import grace_hopper_jpeg, grace_hopper_rgb

from bench.report import write_section
from bench.server import running_server

MIB = 1024 * 1024
DETECT = "/api/face-detection/detect"
RECOGNIZE = "/api/face-recognition/recognize"
REGISTER = "/api/face-recognition/register-multiple"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def large_jpeg(side: int = 4000) -> bytes:
    """Grace Hopper upscaled to ``side`` pixels wide (a phone photo's size), JPEG q90."""
    image = Image.fromarray(grace_hopper_rgb())
    height = round(image.height * side / image.width)
    buffer = io.BytesIO()
    image.resize((side, height), Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@dataclass(frozen=True)
class RequestClass:
    name: str
    path: str
    body: Callable[[int], dict[str, Any]]  # run number -> JSON body
    expect: int  # the status it must answer


def vary(data: bytes, run: int) -> str:
    """Base64 of ``data`` with ``run`` appended after the image's end marker: decoded the same,
    hashed differently, so no request is answered from the analysis cache."""
    return b64(data + b"run" + run.to_bytes(4, "big"))


def request_classes() -> list[RequestClass]:
    small = grace_hopper_jpeg()
    big = large_jpeg()
    bomb = png(6000, 6000, bit_depth=16, color_type=6, rows=4)  # 288 MB as RGBA16, 266 bytes
    palette_bomb = png(6000, 6000, color_type=3)  # 35 KB of zlib, 36 MP for real
    return [
        RequestClass(
            "small photo (512x600 JPEG), detect",
            DETECT,
            lambda run: {"image_base64": vary(small, run)},
            200,
        ),
        RequestClass(
            "4000 px JPEG, detect (reduced decode)",
            DETECT,
            lambda run: {"image_base64": vary(big, run)},
            200,
        ),
        RequestClass(
            "4000 px JPEG, recognize (full decode)",
            RECOGNIZE,
            lambda run: {"face_image_base64": vary(big, run)},
            200,
        ),
        RequestClass(
            "16-bit RGBA PNG bomb (6000x6000, 266 B), refused",
            DETECT,
            lambda run: {"image_base64": vary(bomb, run)},
            413,
        ),
        RequestClass(
            "palette PNG bomb (6000x6000, 35 KB), decoded within the bound",
            DETECT,
            lambda run: {"image_base64": vary(palette_bomb, run)},
            200,
        ),
        RequestClass(
            "register-multiple, 20 photos",
            REGISTER,
            lambda run: {
                "full_name": "Grace Hopper",
                "employee_id": f"E-{run}",
                "images": [vary(small, run * 100 + i) for i in range(20)],
            },
            200,
        ),
    ]


def _status_kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) if match else 0


def peak_growth(pid: int, call: Callable[[], httpx.Response]) -> tuple[int, httpx.Response]:
    """Bytes the server's peak RSS (it and its children) rose above its RSS before ``call``."""
    pids = [pid] + [c.pid for c in psutil.Process(pid).children(recursive=True)]
    for one in pids:
        Path(f"/proc/{one}/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = sum(_status_kib(one, "VmRSS") for one in pids)
    response = call()
    peak = sum(_status_kib(one, "VmHWM") for one in pids)
    return (peak - before) * 1024, response


def measure(client: httpx.Client, pid: int, runs: int) -> list[tuple[RequestClass, int]]:
    """The largest peak growth over ``runs`` requests of each class (after one warm-up each)."""
    results = []
    for index, kind in enumerate(request_classes()):
        client.post(kind.path, json=kind.body(10_000 + index))  # warm-up: models, allocator
        worst = 0
        for run in range(runs):
            body = kind.body(index * 100 + run)
            growth, response = peak_growth(pid, lambda b=body, p=kind.path: client.post(p, json=b))
            if response.status_code != kind.expect:
                raise RuntimeError(f"{kind.name}: {response.status_code} {response.text[:300]}")
            worst = max(worst, growth)
        results.append((kind, worst))
    return results


SERVER_ENV = {"FACEREC_LIMITS__MAX_REQUEST_MEMORY_MB": "200"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with running_server(SERVER_ENV) as server:
        pid = server.rss.process.pid
        baseline = psutil.Process(pid).memory_info().rss
        results = measure(server.client, pid, args.runs)
    lines = [
        f"Server: `facerec serve`, `FACEREC_LIMITS__MAX_REQUEST_MEMORY_MB=200`; resident size "
        f"after start-up {baseline / MIB:.0f} MiB. Peak growth of the server's RSS during one "
        f"request (kernel peak mark reset before each), worst of {args.runs} after a warm-up.",
        "",
        "| request class | peak RSS growth (MiB) |",
        "|---|---|",
    ]
    for kind, growth in results:
        lines.append(f"| {kind.name} | {growth / MIB:.1f} |")
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("limits", "Memory per request (bounded decoding)", body)


if __name__ == "__main__":
    main()
