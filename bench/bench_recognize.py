"""End-to-end recognize latency through HTTP vs the raw model calls, in one run; and the latency
that liveness adds to recognize.

Raw: RetinaFace ``detect`` + dlib ``embed`` (and MiniFASNet ``score``) called in-process on the
decoded photo. HTTP: POST /api/face-recognition/recognize to a real ``facerec serve`` process on
localhost (SQLite, in-process index), with ``check_liveness`` false and true. The MiniFASNet pack
is converted from ../shared/models (or --minifasnet-dir) with the product's own converter.

    .venv/bin/python -m bench.bench_recognize [--runs 50]
"""

from __future__ import annotations

import argparse
import base64
import tempfile
from pathlib import Path

from tests.images import astronaut_png, grace_hopper_jpeg

from bench.report import percentile, write_section
from bench.server import running_server, timed
from facerec.config import LimitSettings
from facerec.inference.base import RuntimeOptions
from facerec.inference.detectors.retinaface import RetinaFaceDetector
from facerec.inference.embedders.dlib_resnet import DlibResNetEmbedder
from facerec.inference.images import decode_image
from facerec.inference.liveness.minifasnet import MiniFASNetLiveness
from facerec.inference.liveness.minifasnet_pack import convert_pack

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "models" / "minifasnet"


def cell(values: list[float]) -> str:
    return f"{percentile(values, 50):.1f} / {percentile(values, 95):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--minifasnet-dir", type=Path, default=SHARED)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="facerec-bench-rec-"))
    model_dir = tmp / "models"
    convert_pack(args.minifasnet_dir, model_dir / "minifasnet")

    runtime = RuntimeOptions(intra_op_threads=2)
    detector, embedder = RetinaFaceDetector(), DlibResNetEmbedder()
    liveness = MiniFASNetLiveness(model_dir / "minifasnet")
    for model in (detector, embedder, liveness):
        model.load(runtime)
    photo = grace_hopper_jpeg()
    image = decode_image(photo, LimitSettings()).pixels
    faces = detector.detect(image, conf_threshold=0.5, iou_threshold=0.4, max_faces=50)
    raw_detect = timed(
        lambda: detector.detect(image, conf_threshold=0.5, iou_threshold=0.4, max_faces=50),
        args.runs,
    )
    raw_embed = timed(lambda: embedder.embed(image, faces), args.runs)
    raw_live = timed(lambda: liveness.score(image, faces), args.runs)

    env = {
        "FACEREC_MODELS__MODEL_DIR": str(model_dir),
        "FACEREC_MODELS__PRELOAD": '["retinaface","dlib_resnet","minifasnet"]',
    }
    with running_server(env) as server:
        client = server.client
        api = "/api/face-recognition"
        for name, data in (("grace", photo), ("astronaut", astronaut_png())):
            client.post(
                api + "/add-face",
                json={"person_name": name, "face_image_base64": base64.b64encode(data).decode()},
            ).raise_for_status()
        calls = iter(range(10**9))

        def recognize(live: bool, repeat: bool = False) -> None:
            # Bytes after the JPEG's end marker change its hash, not its pixels: every call is a
            # cache miss unless ``repeat`` (then the recent-results cache answers).
            data = photo if repeat else photo + next(calls).to_bytes(8, "little")
            query = base64.b64encode(data).decode()
            response = client.post(
                api + "/recognize", json={"face_image_base64": query, "check_liveness": live}
            )
            response.raise_for_status()

        http_plain = timed(lambda: recognize(False), args.runs)
        http_live = timed(lambda: recognize(True), args.runs)
        http_cached = timed(lambda: recognize(False, repeat=True), args.runs)
        server_peak = server.rss.peak

    raw_total = [d + e for d, e in zip(raw_detect, raw_embed, strict=True)]
    added = percentile(http_live, 50) - percentile(http_plain, 50)
    body = "\n".join(
        [
            f"grace_hopper.jpg (512x600, one face), gallery of 2 persons; {args.runs} runs after "
            "5 warm-up runs; milliseconds p50 / p95.",
            "",
            "| step | p50 / p95 ms |",
            "|---|---|",
            f"| raw RetinaFace detect | {cell(raw_detect)} |",
            f"| raw dlib ResNet embed (1 face) | {cell(raw_embed)} |",
            f"| raw detect + embed | {cell(raw_total)} |",
            f"| raw MiniFASNet score (2 models, 1 face) | {cell(raw_live)} |",
            f"| HTTP recognize (new image each call) | {cell(http_plain)} |",
            f"| HTTP recognize, check_liveness=true | {cell(http_live)} |",
            f"| HTTP recognize, same image again (recent-results cache) | {cell(http_cached)} |",
            "",
            f"HTTP overhead over raw detect + embed (p50): "
            f"+{percentile(http_plain, 50) - percentile(raw_total, 50):.1f} ms (decode, quality, "
            f"search, person lookup, JSON). Liveness adds {added:.1f} ms (p50) to recognize. "
            f"Server peak RSS {server_peak / 2**20:.0f} MiB with the three models loaded.",
        ]
    )
    print(body)
    write_section("recognize", "Recognize latency (raw models vs HTTP; liveness cost)", body)


if __name__ == "__main__":
    main()
