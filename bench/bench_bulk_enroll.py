"""Bulk enrollment: faces per second through ``facerec enroll`` in batches (the ``enroll-batch``
endpoint) with MobileFaceNet and with dlib, against a running service (``--url``) and offline on
the database, and the one-request-per-photo path for comparison.

The folder is composed from the real photos of ../shared/faces-dev (read there, never copied into
the repository): each person is one faces-dev identity, each photo one of its photos pasted on a
640x640 canvas at a random size, offset, small rotation and brightness (tight crops get room
around the face, as a camera frame has). Nothing is kept after the run.

    .venv/bin/python -m bench.bench_bulk_enroll [--persons 30] [--photos 8] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import psutil
from PIL import Image, ImageEnhance

from bench.report import load_average, write_section
from bench.server import running_server
from facerec.cli import main
from facerec.inference.catalogue import MOBILEFACENET

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
FACES = SHARED / "faces-dev"
MBF_FILE = SHARED / "models" / "mobilefacenet" / "mobilefacenet_foamliu_opset18.onnx"
CANVAS = 640


def real_photos() -> dict[str, list[Path]]:
    """faces-dev's real photos by identity (unnamed ones left out)."""
    by_identity: dict[str, list[Path]] = defaultdict(list)
    with (FACES / "manifest.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["kind"] == "real" and row["identity"]:
                by_identity[row["identity"]].append(FACES / row["path"])
    return dict(sorted(by_identity.items()))


def composed(path: Path, rng: np.random.Generator) -> bytes:
    photo = Image.open(path).convert("RGB")
    side = int(rng.uniform(0.45, 0.8) * CANVAS)
    scale = side / max(photo.size)
    photo = photo.resize((max(1, int(photo.width * scale)), max(1, int(photo.height * scale))))
    photo = photo.rotate(float(rng.uniform(-6, 6)), expand=True, fillcolor=(118, 118, 118))
    photo = ImageEnhance.Brightness(photo).enhance(float(rng.uniform(0.85, 1.15)))
    canvas = Image.new("RGB", (CANVAS, CANVAS), (118, 118, 118))
    x = int(rng.uniform(0, max(1, CANVAS - photo.width)))
    y = int(rng.uniform(0, max(1, CANVAS - photo.height)))
    canvas.paste(photo, (x, y))
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=int(rng.integers(85, 95)))
    return buffer.getvalue()


def build(root: Path, persons: int, photos: int) -> int:
    rng = np.random.default_rng(11)
    identities = list(real_photos().items())
    for p in range(persons):
        identity, sources = identities[p % len(identities)]
        folder = root / f"{identity}-{p:03d}"
        folder.mkdir(parents=True)
        for i in range(photos):
            (folder / f"{i:03d}.jpg").write_bytes(composed(sources[i % len(sources)], rng))
    return persons * photos


def link_models(model_dir: Path) -> None:
    (model_dir / MOBILEFACENET.pack).mkdir(parents=True, exist_ok=True)
    target = model_dir / MOBILEFACENET.pack / MOBILEFACENET.install_name
    if not target.exists():
        target.symlink_to(MBF_FILE)


def enroll(root: Path, collection: str, argv: list[str]) -> dict[str, float]:
    (root / ".facerec-enroll.json").unlink(missing_ok=True)
    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = main(["enroll", str(root), "--collection", collection, "--json", *argv])
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


def cpu_seconds(process: psutil.Process) -> float:
    """CPU time of the service process and its children (every thread, user + system)."""
    times = process.cpu_times()
    return float(times.user + times.system + times.children_user + times.children_system)


# (label, model, extra CLI arguments)
REMOTE = (
    ("remote, batches of 32", "mobilefacenet", ["--batch-size", "32"]),
    ("remote, batches of 32", "dlib_resnet", ["--batch-size", "32"]),
    ("remote, per photo (4 in flight)", "mobilefacenet", ["--batch-size", "0", "--workers", "4"]),
    ("remote, per photo (4 in flight)", "dlib_resnet", ["--batch-size", "0", "--workers", "4"]),
)
# The service's defaults run bulk enrollment on sessions of its own with one onnxruntime thread
# each and detect at 320 px (small faces again at the 1024 px scale, on a crop). For comparison:
# bulk on the service's own sessions (2 onnxruntime threads) at the service's side (1024 px), as
# before; each of the two alone; and the defaults with the mirror sum off.
SERVICE_SESSIONS = {"FACEREC_MODELS__BULK_INTRA_OP_THREADS": "0"}
SERVICE_SIDE = {"FACEREC_LIMITS__BULK_DETECT_MAX_SIDE": ""}
BATCHES = ["--batch-size", "32"]
TUNED: tuple[tuple[dict[str, str], tuple[tuple[str, str, list[str]], ...]], ...] = (
    (
        {**SERVICE_SESSIONS, **SERVICE_SIDE},
        (
            (
                "remote, batches of 32, service's sessions (2 onnxruntime threads), detect side "
                "1024",
                "mobilefacenet",
                BATCHES,
            ),
        ),
    ),
    (
        SERVICE_SIDE,
        (("remote, batches of 32, own sessions, detect side 1024", "mobilefacenet", BATCHES),),
    ),
    (
        SERVICE_SESSIONS,
        (("remote, batches of 32, service's sessions, detect side 320", "mobilefacenet", BATCHES),),
    ),
    (
        {"FACEREC_MODELS__MIRROR_SUM": "false"},
        (("remote, batches of 32, mirror sum off", "mobilefacenet", BATCHES),),
    ),
)
OFFLINE = (
    ("offline, batches of 32", "mobilefacenet", ["--batch-size", "32", "--workers", "2"]),
    ("offline, batches of 32", "dlib_resnet", ["--batch-size", "32", "--workers", "2"]),
)
Row = tuple[str, str, dict[str, float]]


def remote_rows(
    root: Path,
    models: Path,
    runs: tuple[tuple[str, str, list[str]], ...],
    env: dict[str, str],
    warm: Path | None = None,
) -> list[Row]:
    rows: list[Row] = []
    full_env = {
        "FACEREC_AUTH__RATE_PER_SECOND": "0",
        "FACEREC_MODELS__MODEL_DIR": str(models),
        "FACEREC_MODELS__PRELOAD": '["retinaface","dlib_resnet","mobilefacenet"]',
        **env,
    }
    with running_server(full_env) as server:
        url = str(server.client.base_url)
        for model in dict.fromkeys(model for _, model, _ in runs) if warm else ():
            # Untimed: the bulk sessions are created and run once, as on a service in use.
            enroll(warm, f"warm-{model}".replace("_", "-"), ["--url", url, "--model", model])
        for label, model, extra in runs:
            argv = ["--url", url, "--model", model, "--timeout", "300", *extra]
            before = cpu_seconds(server.rss.process)
            row = enroll(root, f"r{len(rows)}-{model}".replace("_", "-"), argv)
            row["cpu"] = cpu_seconds(server.rss.process) - before
            rows.append((label, model, row))
            print(rows[-1], file=sys.stderr)
    return rows


def main_bench() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, default=30)
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="batch rows only, no section")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="facerec-bulk-"))
    people = tmp / "people"
    total = build(people, args.persons, args.photos)
    link_models(tmp / "models")
    warm = tmp / "warm"
    build(warm, 2, args.photos)
    print(f"{total} photos in {people}", file=sys.stderr)
    runs = REMOTE[:2] if args.quick else REMOTE
    rows = remote_rows(people, tmp / "models", runs, {}, warm)
    for env, tuned in TUNED:
        rows += remote_rows(people, tmp / "models", tuned, env, warm)
    os.environ["FACEREC_DB__URL"] = f"sqlite+aiosqlite:///{tmp / 'offline.db'}"
    os.environ["FACEREC_INDEX__INDEX_DIR"] = str(tmp / "index")
    os.environ["FACEREC_MODELS__MODEL_DIR"] = str(tmp / "models")
    for n, (label, model, extra) in enumerate(() if args.quick else OFFLINE):
        rows.append((label, model, enroll(people, f"o{n}", ["--model", model, *extra])))
        print(rows[-1], file=sys.stderr)
    if args.quick:
        return
    write_section("bulk_enroll", "Bulk enrollment (facerec enroll)", report(rows, total, args))


def report(rows: list[Row], total: int, args: argparse.Namespace) -> str:
    lines = [
        f"{total} photos ({args.persons} persons × {args.photos}, composed from the real "
        "photos of faces-dev: each pasted on a 640x640 canvas at a random size, offset, "
        "rotation and brightness), `facerec enroll DIR --model M`; detector: RetinaFace (the "
        "default). remote: a `facerec serve` with its defaults (2 inference threads; bulk "
        "enrollment on sessions of its own with 1 onnxruntime thread each, detecting at 320 px, "
        "a subject under 64 px again at the 1024 px scale on a crop around it) on the same "
        "machine, unless the row says otherwise; each server first enrolls "
        f"{2 * args.photos} other photos with each model, untimed (its sessions loaded and run "
        "once, as on a service in use); offline: the configured SQLite database, no "
        "HTTP. faces/s: faces enrolled over the enrollment's own time (finding persons, "
        "sending, analysing, writing); wall adds process start-up (offline: opening the "
        "database, loading the models). CPU ms/face: the service process's CPU time (all "
        "threads) per enrolled face, which a busy machine inflates less than wall time "
        "(though still: shared caches and cores); 2-core bound = 2000 / CPU ms per face, the "
        "rate two otherwise idle cores would allow at that cost. Load average at the end: "
        f"{load_average()}.",
        "",
        "| path | embedder | enrolled | rejected | seconds | faces/s | CPU ms/face "
        "| 2-core bound faces/s | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, model, r in rows:
        seconds = r["seconds"] or float("nan")
        faces = r["enrolled"] or float("nan")
        cpu = r.get("cpu")
        per_face = f"{cpu / faces * 1000:.0f}" if cpu is not None else "-"
        bound = f"{2 * faces / cpu:.0f}" if cpu else "-"
        lines.append(
            f"| {label} | {model} | {r['enrolled']:.0f} | {r['rejected']:.0f} | "
            f"{r['seconds']:.1f} | {r['enrolled'] / seconds:.1f} | {per_face} | {bound} | "
            f"{r['wall']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main_bench()
