"""Bulk enrollment through the CLI: photos per second with 1, 2 and 4 workers, against a running
service (``--url``) and offline on the database, on a folder built from the real test photos
(Grace Hopper, the astronaut) with variants: small rotations, scales, brightness, mirror.

    .venv/bin/python -m bench.bench_bulk_enroll [--persons 20] [--photos 10]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps
from tests.images import astronaut_rgb, grace_hopper_rgb

from bench.report import write_section
from bench.server import running_server
from facerec.cli import main

WORKERS = (1, 2, 4)


def variant(base: Image.Image, rng: np.random.Generator) -> bytes:
    image = base.rotate(float(rng.uniform(-8, 8)), fillcolor=(128, 128, 128))
    scale = float(rng.uniform(0.7, 1.1))
    image = image.resize((int(image.width * scale), int(image.height * scale)))
    image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.8, 1.2)))
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(rng.integers(80, 95)))
    return buffer.getvalue()


def build(root: Path, persons: int, photos: int) -> int:
    rng = np.random.default_rng(7)
    bases = [Image.fromarray(grace_hopper_rgb()), Image.fromarray(astronaut_rgb())]
    for p in range(persons):
        folder = root / f"person-{p:03d}"
        folder.mkdir(parents=True)
        for i in range(photos):
            (folder / f"{i:03d}.jpg").write_bytes(variant(bases[p % 2], rng))
    return persons * photos


def enroll(root: Path, collection: str, workers: int, url: str | None) -> dict[str, float]:
    (root / ".facerec-enroll.json").unlink(missing_ok=True)
    argv = ["enroll", str(root), "--collection", collection, "--workers", str(workers), "--json"]
    argv += ["--url", url] if url else []
    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    wall = time.perf_counter() - started
    summary = json.loads(out.getvalue())
    if code != 0:
        raise RuntimeError(f"enroll failed: {summary}")
    return {
        "enrolled": summary["enrolled"],
        "rejected": summary["rejected"],
        "seconds": summary["seconds"],
        "wall": wall,
    }


def main_bench() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, default=20)
    parser.add_argument("--photos", type=int, default=10)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="facerec-bulk-"))
    total = build(tmp / "people", args.persons, args.photos)
    print(f"{total} photos in {tmp / 'people'}", file=sys.stderr)
    rows: list[tuple[str, int, dict[str, float]]] = []
    env = {"FACEREC_SERVER__EXECUTOR_THREADS": "4", "FACEREC_AUTH__RATE_PER_SECOND": "0"}
    with running_server(env) as server:
        url = str(server.client.base_url)
        for workers in WORKERS:
            rows.append(("remote", workers, enroll(tmp / "people", f"r{workers}", workers, url)))
            print(rows[-1], file=sys.stderr)
    os.environ["FACEREC_DB__URL"] = f"sqlite+aiosqlite:///{tmp / 'offline.db'}"
    os.environ["FACEREC_INDEX__INDEX_DIR"] = str(tmp / "index")
    for workers in WORKERS:
        rows.append(("offline", workers, enroll(tmp / "people", f"o{workers}", workers, None)))
        print(rows[-1], file=sys.stderr)
    lines = [
        f"{total} photos ({args.persons} persons × {args.photos}, JPEG variants of two real "
        "photos), `facerec enroll DIR --workers N`; remote: a `facerec serve` with 4 executor "
        "threads on the same machine; offline: the configured SQLite database, no HTTP. "
        "photos/s counts the enrollment itself; wall adds process start-up work (offline: "
        "opening the database and loading the models).",
        "",
        "| mode | workers | enrolled | rejected | seconds | photos/s | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, workers, r in rows:
        rate = total / r["seconds"] if r["seconds"] else float("nan")
        lines.append(
            f"| {mode} | {workers} | {r['enrolled']:.0f} | {r['rejected']:.0f} | "
            f"{r['seconds']:.1f} | {rate:.1f} | {r['wall']:.1f} |"
        )
    write_section("bulk_enroll", "Bulk enrollment (facerec enroll)", "\n".join(lines))


if __name__ == "__main__":
    main_bench()
