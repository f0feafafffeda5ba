"""Every installed face detector against RetinaFace on the real photos of faces-dev.

Each photo of ``manifest.csv`` (``kind=real``) shows one main identity; its notes say
``multi_face=1`` where the photo holds several people. Per detector, through the service's resize
policy (``detect_downscaled``, longer side ≤ 1024) at the service defaults (score ≥ 0.5, NMS IoU
0.4): faces found, photos with no face (missed), extra detections on one-face photos (an
approximate count of false detections: a second real face in the background counts too), faces
per group photo, the mean distance of the five landmarks to RetinaFace's on the same face
(normalised by RetinaFace's inter-ocular distance; faces matched by IoU ≥ 0.5) and the median
latency of ``detect_downscaled`` on a 512 px and a 1920 px photo.

The pack detectors are read from a model dir laid out as ``facerec models import`` leaves it;
by default one made of links to ``../shared/models``.

    .venv/bin/python bench/bench_detectors.py [--manifest CSV] [--runs 20] [--no-write]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(REPO))

from bench.report import percentile, write_section  # noqa: E402
from facerec.config import LimitSettings, Settings  # noqa: E402
from facerec.domain.detection import DetectOptions, detect_downscaled  # noqa: E402
from facerec.inference.base import FaceDetector, RuntimeOptions  # noqa: E402
from facerec.inference.catalogue import entries  # noqa: E402
from facerec.inference.images import decode_image  # noqa: E402
from facerec.inference.registry import build_models  # noqa: E402
from facerec.inference.types import ImageBGR, ModelTask  # noqa: E402
from facerec.values import BBox, Detection  # noqa: E402

SHARED = REPO.parent / "shared"
DEFAULT_MANIFEST = SHARED / "faces-dev" / "manifest.csv"
SHARED_FILES = {
    "scrfd_500m": "scrfd/scrfd_500m_bnkps.onnx",
    "scrfd_2.5g": "scrfd/scrfd_2.5g_bnkps.onnx",
    "yunet": "yunet/face_detection_yunet_2023mar.onnx",
    "yolov8-lite-t": "yolov8-face/yolov8-lite-t.onnx",
    "yolov5n-0.5": "yolov5-face/yolov5n-0.5.onnx",
}
OPTIONS = DetectOptions(conf_threshold=0.5, iou_threshold=0.4, max_faces=50)


@dataclass
class Tally:
    one_face_photos: int = 0
    group_photos: int = 0
    faces: int = 0
    missed: int = 0
    extra_on_one_face: int = 0
    group_faces: int = 0
    landmark_errors: list[float] = field(default_factory=list)
    p50_512: float = float("nan")
    p50_1920: float = float("nan")


def linked_model_dir(shared_models: Path) -> Path:
    model_dir = Path(tempfile.mkdtemp(prefix="facerec-bench-models-"))
    for entry in entries(ModelTask.DETECTION):
        relative = SHARED_FILES.get(entry.name)
        if relative and (shared_models / relative).is_file():
            (model_dir / entry.pack).mkdir(parents=True)
            (model_dir / entry.pack / entry.install_name).symlink_to(shared_models / relative)
    return model_dir


def iou(a: BBox, b: BBox) -> float:
    w = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    h = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = w * h
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def landmark_error(faces: list[Detection], reference: list[Detection]) -> float | None:
    """Mean landmark distance / inter-ocular distance of the face matching RetinaFace's largest."""
    if not faces or not reference:
        return None
    ref = max(reference, key=lambda f: f.bbox.area)
    match = max(faces, key=lambda f: iou(f.bbox, ref.bbox))
    if iou(match.bbox, ref.bbox) < 0.5 or match.landmarks is None or ref.landmarks is None:
        return None
    inter_ocular = float(np.linalg.norm(ref.landmarks[1] - ref.landmarks[0]))
    if inter_ocular <= 0:
        return None
    return float(np.linalg.norm(match.landmarks - ref.landmarks, axis=1).mean() / inter_ocular)


def latency_ms(detector: FaceDetector, image: ImageBGR, max_side: int, runs: int) -> float:
    detect_downscaled(detector, image, max_side, OPTIONS)  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        detect_downscaled(detector, image, max_side, OPTIONS)
        times.append((time.perf_counter() - start) * 1000)
    return percentile(times, 50)


def read_photos(manifest: Path) -> list[tuple[str, bool, ImageBGR]]:
    """(path, several faces?, image) for every real photo of the manifest."""
    photos = []
    with manifest.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["kind"] != "real":
                continue
            data = (manifest.parent / row["path"]).read_bytes()
            image = decode_image(data, LimitSettings()).pixels
            photos.append((row["path"], "multi_face=1" in row["notes"], image))
    return photos


def test_images() -> tuple[ImageBGR, ImageBGR]:
    from tests.images import astronaut_rgb, composite_rgb

    small = np.ascontiguousarray(astronaut_rgb()[:, :, ::-1])  # 512 x 512
    wide = np.ascontiguousarray(composite_rgb()[:, :, ::-1])
    size = (1920, round(wide.shape[0] * 1920 / wide.shape[1]))
    large = np.asarray(cv2.resize(wide, size, interpolation=cv2.INTER_CUBIC), dtype=np.uint8)
    return small, large


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    model_dir = args.model_dir or linked_model_dir(SHARED / "models")
    max_side = LimitSettings().detect_max_side
    runtime = RuntimeOptions()
    detectors: dict[str, FaceDetector] = {}
    for name, model in build_models(Settings(models={"model_dir": model_dir})).items():
        if isinstance(model, FaceDetector) and model.is_installed():
            model.load(runtime)
            detectors[name] = model
    photos = read_photos(args.manifest)
    small, large = test_images()

    reference = detectors["retinaface"]
    reference_faces = [detect_downscaled(reference, img, max_side, OPTIONS) for _, _, img in photos]
    tallies: dict[str, Tally] = {}
    for name, detector in detectors.items():
        tally = tallies[name] = Tally()
        for (_, group, image), ref in zip(photos, reference_faces, strict=True):
            faces = detect_downscaled(detector, image, max_side, OPTIONS)
            tally.faces += len(faces)
            tally.missed += not faces
            if group:
                tally.group_photos += 1
                tally.group_faces += len(faces)
            else:
                tally.one_face_photos += 1
                tally.extra_on_one_face += max(0, len(faces) - 1)
            error = landmark_error(faces, ref)
            if error is not None and name != "retinaface":
                tally.landmark_errors.append(error)
        tally.p50_512 = latency_ms(detector, small, max_side, args.runs)
        tally.p50_1920 = latency_ms(detector, large, max_side, args.runs)
        print(name, tally.faces, tally.missed, tally.extra_on_one_face, flush=True)

    one = tallies["retinaface"].one_face_photos
    groups = tallies["retinaface"].group_photos
    lines = [
        f"{len(photos)} real photos of faces-dev: {one} with one face, {groups} group photos "
        "(`multi_face=1` in the notes). Service defaults: score ≥ 0.5, NMS IoU 0.4, longer side "
        f"≤ {max_side} px; onnxruntime CPU, 2 intra-op threads.",
        "",
        "| detector | licence | faces found | missed photos | extra on one-face photos "
        "| faces per group photo | landmarks vs RetinaFace (mean / p90, × inter-ocular) "
        "| p50 512 px | p50 1920 px |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, t in tallies.items():
        licence = detectors[name].info.license
        errors = t.landmark_errors
        landmarks = (
            "reference"
            if name == "retinaface"
            else f"{np.mean(errors):.3f} / {percentile(errors, 90):.3f} (n={len(errors)})"
            if errors
            else "n/a"
        )
        per_group = t.group_faces / t.group_photos if t.group_photos else float("nan")
        lines.append(
            f"| {name} | {licence} | {t.faces} | {t.missed} | {t.extra_on_one_face} "
            f"| {per_group:.1f} | {landmarks} | {t.p50_512:.1f} ms | {t.p50_1920:.1f} ms |"
        )
    lines += [
        "",
        "Latency: `detect_downscaled` (resize policy + detector), median of "
        f"{args.runs} runs after one warm-up, on the astronaut (512×512) and the Grace "
        "Hopper + astronaut montage scaled to 1920 px wide. Extra detections on one-face photos "
        "are approximate false detections: a real second face in the background counts too.",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("detectors", "Face detectors on faces-dev", body)


if __name__ == "__main__":
    main()
