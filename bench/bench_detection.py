"""Detection latency three ways in one run, on the sample photos shipped in PyPI wheels.

1. raw model: the onnxruntime session alone on a prepared tensor (RetinaFace);
2. model wrapper: ``RetinaFaceDetector.detect`` (pre/post-processing, anchors, NMS);
3. service function: ``DetectionService.detect`` on encoded bytes (decode, resize policy, detect,
   quality);
4. HTTP: POST /api/face-detection/detect to a real ``facerec serve`` process on localhost.

The service's overhead over the raw model is the figure we steer by. Also reports peak RSS of the
bench process and of the server process.

    .venv/bin/python -m bench.bench_detection [--runs 100]
"""

from __future__ import annotations

import argparse
import base64
import resource

import numpy as np
from tests.images import astronaut_png, encode, grace_hopper_jpeg

from bench.report import percentile, write_section
from bench.server import running_server, timed
from facerec.config import LimitSettings, ModelSettings
from facerec.domain.detection import DetectionService, DetectOptions
from facerec.domain.timing import StageTimer
from facerec.inference.base import RuntimeOptions
from facerec.inference.detectors.retinaface import MEAN_BGR, RetinaFaceDetector
from facerec.inference.images import decode_image
from facerec.inference.manager import ModelManager


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()

    photos = {
        "grace_hopper.jpg (512x600)": grace_hopper_jpeg(),
        "astronaut.png (512x512)": astronaut_png(),
    }
    photos["grace_hopper x4, 2048x2400 JPEG"] = encode(
        np.asarray(
            __import__("PIL.Image", fromlist=["Image"])
            .open(__import__("io").BytesIO(grace_hopper_jpeg()))
            .resize((2048, 2400))
        ),
        "JPEG",
        quality=90,
    )
    runtime = RuntimeOptions(intra_op_threads=2)
    detector = RetinaFaceDetector()
    detector.load(runtime)
    manager = ModelManager({"retinaface": detector}, ModelSettings(preload=[]))
    service = DetectionService(manager, LimitSettings())
    options = DetectOptions(model_name="retinaface")

    rows = []
    with running_server() as server:
        client = server.client
        for name, data in photos.items():
            image = decode_image(data, LimitSettings()).pixels
            side = max(image.shape[:2])
            scaled = image
            if side > 1024:
                import cv2

                f = 1024 / side
                scaled = cv2.resize(image, (round(image.shape[1] * f), round(image.shape[0] * f)))
            h, w = scaled.shape[:2]
            ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
            tensor = np.zeros((1, 3, ph, pw), np.float32)
            tensor[0, :, :h, :w] = (scaled.astype(np.float32) - MEAN_BGR).transpose(2, 0, 1)
            raw = timed(lambda t=tensor: detector.session.run(None, {"input": t}), args.runs)
            wrapper = timed(
                lambda s=scaled: detector.detect(
                    s, conf_threshold=0.5, iou_threshold=0.4, max_faces=50
                ),
                args.runs,
            )
            func = timed(lambda d=data: service.detect(d, options, StageTimer()), args.runs)
            payload = {"image_base64": base64.b64encode(data).decode()}

            def http_call(p: dict[str, str] = payload) -> None:
                response = client.post("/api/face-detection/detect", json=p)
                response.raise_for_status()

            http = timed(http_call, args.runs)
            rows.append((name, raw, wrapper, func, http))
        server_peak = server.rss.peak

    bench_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [
        f"{args.runs} runs per cell after 5 warm-up runs; milliseconds, p50 / p95. onnxruntime "
        "intra-op threads = 2, spinning off.",
        "",
        "| image | raw ONNX session | detector wrapper | service function | HTTP (JSON base64) "
        "| HTTP overhead over raw (p50) |",
        "|---|---|---|---|---|---|",
    ]
    for name, raw, wrapper, func, http in rows:

        def cell(values: list[float]) -> str:
            return f"{percentile(values, 50):.1f} / {percentile(values, 95):.1f}"

        overhead = percentile(http, 50) - percentile(raw, 50)
        lines.append(
            f"| {name} | {cell(raw)} | {cell(wrapper)} | {cell(func)} | {cell(http)} "
            f"| +{overhead:.1f} ms |"
        )
    lines += [
        "",
        f"Peak RSS: bench process {bench_rss:.0f} MiB (one detector loaded, images decoded); "
        f"server process {server_peak / 2**20:.0f} MiB.",
        "",
        "The service function adds image decoding (JPEG/PNG; a JPEG at least twice "
        "`detect_max_side` is decoded by the codec at 1/2-1/8 scale), the resize policy and the "
        "quality score; HTTP adds base64, JSON and the ASGI stack.",
    ]
    body = "\n".join(lines)
    print(body)
    write_section("detection", "Detection latency (raw model, service, HTTP)", body)


if __name__ == "__main__":
    main()
