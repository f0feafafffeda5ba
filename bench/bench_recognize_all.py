"""recognize-all throughput: faces per second on group photos, through HTTP, against one recognize
per face in the same run.

A real ``facerec serve`` process (SQLite, default models) with Grace Hopper enrolled; group photos
are montages of real public-domain photos (Grace Hopper, the astronaut, mirrored and darkened
copies) with 2, 4 and 6 faces. For each: recognize-all once per photo vs one recognize per face
(the face cropped out), p50 latency and faces per second.

    .venv/bin/python -m bench.bench_recognize_all [--runs 15]
"""

from __future__ import annotations

import argparse
import base64
import time

import numpy as np
from PIL import Image, ImageEnhance
from tests.images import astronaut_rgb, encode, grace_hopper_jpeg, grace_hopper_rgb

from bench.report import percentile, write_section
from bench.server import running_server

API = "/api/face-recognition"


def tiles() -> list[np.ndarray]:
    grace, astronaut = grace_hopper_rgb(), astronaut_rgb()
    dark = np.asarray(ImageEnhance.Brightness(Image.fromarray(astronaut[:, ::-1])).enhance(0.8))
    return [grace, astronaut, grace[:, ::-1].copy(), dark, grace, astronaut]


def montage(parts: list[np.ndarray], height: int = 480) -> bytes:
    scaled = []
    for tile in parts:
        image = Image.fromarray(tile)
        scaled.append(
            np.asarray(image.resize((round(image.width * height / image.height), height)))
        )
    return encode(np.hstack(scaled), "JPEG", quality=90)


def single(tile: np.ndarray, tag: str) -> bytes:
    """The photo as a JPEG whose bytes differ per ``tag`` (a comment), the pixels unchanged."""
    return encode(tile, "JPEG", quality=90, comment=tag.encode())


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    rows = []
    with running_server() as server:
        client = server.client
        enrolled = client.post(
            API + "/add-face",
            json={"person_name": "Grace", "face_image_base64": b64(grace_hopper_jpeg())},
        )
        enrolled.raise_for_status()
        for count in (2, 4, 6):
            parts = tiles()[:count]
            photo = b64(montage(parts))
            body = client.post(API + "/recognize-all", json={"face_image_base64": photo}).json()
            faces = body["faces_detected"]
            all_ms, per_face_ms = [], []
            for run in range(args.runs):
                # New bytes every run: recognize would otherwise answer the repeated photos from
                # its query cache; recognize-all never uses it.
                singles = [b64(single(p, f"{count} {run} {i}")) for i, p in enumerate(parts)]
                started = time.perf_counter()
                client.post(
                    API + "/recognize-all", json={"face_image_base64": photo}
                ).raise_for_status()
                all_ms.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                for tile in singles:
                    client.post(API + "/recognize", json={"face_image_base64": tile})
                per_face_ms.append((time.perf_counter() - started) * 1000)
            p50_all, p50_each = percentile(all_ms, 50), percentile(per_face_ms, 50)
            rows.append(
                f"| {count} | {faces} | {p50_all:.0f} | {faces / p50_all * 1000:.1f} | "
                f"{p50_each:.0f} | {len(parts) / p50_each * 1000:.1f} |"
            )
            print(rows[-1])
    body = "\n".join(
        [
            "Group photos: montages of the matplotlib/scikit-image photos at 480 px high; one "
            "enrolled person. recognize-all analyses the photo once (one detection, one batched "
            "embedding call) and assigns identities over all faces; the comparison sends each "
            "photo of the montage to recognize separately (new bytes every run, so no "
            f"query-cache hits). p50 over {args.runs} runs.",
            "",
            "| photos in montage | faces detected | recognize-all ms (p50) | faces/s | "
            "one recognize per photo, ms total (p50) | faces/s |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )
    write_section("recognize_all", "recognize-all: faces per second on group photos", body)


if __name__ == "__main__":
    main()
