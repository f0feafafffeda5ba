"""How far bulk enrollment's vectors are from single enrollment's at a smaller detector side.

Bulk enrollment locates faces at ``limits.bulk_detect_max_side`` (320 px by default) instead of
``limits.detect_max_side`` (1024); a subject under ``MIN_BULK_FACE`` pixels tall is detected
again at the 1024 px scale on a crop around it (``around``), a photo with no face found whole.
The landmarks, and so the aligned chip and its vector, then come from a smaller image. For every
real photo of ``../shared/faces-dev`` larger than the side: the subject's height at that side and
the cosine distance between its MobileFaceNet vectors (RetinaFace at the side against RetinaFace
at 1024), by face height; and for the subjects under ``MIN_BULK_FACE``, the distance after
bulk's detection on the crop.

    python -m bench.bench_bulk_side                 # sides 480, 384, 320, 256
    python -m bench.bench_bulk_side --sides 320 --no-write
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(REPO))

from bench.bench_bulk_enroll import link_models  # noqa: E402
from bench.report import load_average, write_section  # noqa: E402
from facerec.config import Settings  # noqa: E402
from facerec.domain.analysis import Analyzer  # noqa: E402
from facerec.domain.bulk_enrollment_analysis import MIN_BULK_FACE, around  # noqa: E402
from facerec.domain.detection import DetectionService  # noqa: E402
from facerec.domain.probes import Analysis, AnalysisOptions, FaceChoice  # noqa: E402
from facerec.domain.timing import StageTimer  # noqa: E402
from facerec.domain.tracking import iou  # noqa: E402
from facerec.errors import FaceRejectedError  # noqa: E402
from facerec.inference.manager import ModelManager  # noqa: E402
from facerec.inference.registry import build_models  # noqa: E402
from facerec.values import BBox  # noqa: E402

FACES_DEV = REPO.parent / "shared" / "faces-dev"
BANDS = ((0, 48), (48, MIN_BULK_FACE), (MIN_BULK_FACE, 96), (96, 128), (128, 200), (200, 10_000))
OPTIONS = AnalysisOptions(
    detector="retinaface", embedder="mobilefacenet", choice=FaceChoice.SUBJECT
)


@dataclass(frozen=True)
class Pair:
    side: int
    height: float  # the subject's height in pixels at ``side``
    distance: float  # cosine distance to the vector at the service's side
    same_face: bool  # the subject's boxes overlap (else another face was chosen)
    refined: float = float("nan")  # distance after detection on a crop (small subjects only)


def analyzer(models: ModelManager, settings: Settings, side: int) -> Analyzer:
    limits = settings.limits.model_copy(update={"detect_max_side": side})
    return Analyzer(models, DetectionService(models, limits), settings.liveness.threshold)


def subject(found: Analysis) -> tuple[np.ndarray, BBox]:
    probe = found.subject
    assert probe.embedding is not None
    return probe.embedding, probe.detection.bbox


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    return 1.0 - float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def measure(sides: list[int]) -> tuple[list[Pair], int]:
    tmp = Path(tempfile.mkdtemp(prefix="facerec-bulk-side-"))
    link_models(tmp / "models")
    settings = Settings(_env_file=None, models={"model_dir": str(tmp / "models")})
    models = ModelManager(build_models(settings), settings.models)
    full = analyzer(models, settings, settings.limits.detect_max_side)
    smaller = {side: analyzer(models, settings, side) for side in sides}
    with (FACES_DEV / "manifest.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["kind"] == "real"]
    pairs: list[Pair] = []
    photos = 0
    for row in rows:
        data = (FACES_DEV / row["path"]).read_bytes()
        try:
            reference = full.analyse(data, OPTIONS, StageTimer())
        except FaceRejectedError:
            continue
        photos += 1
        vector, box = subject(reference)
        longest = max(reference.image.width, reference.image.height)
        for side, small in smaller.items():
            if longest <= side:
                continue  # seen whole at either side
            try:
                other, other_box = subject(small.analyse(data, OPTIONS, StageTimer()))
            except FaceRejectedError:
                pairs.append(Pair(side, 0.0, float("nan"), False))
                continue
            height = (box.y2 - box.y1) * side / longest
            refined = float("nan")
            if other_box.height * side / longest < MIN_BULK_FACE:  # what bulk does then
                region = around(other_box, reference.image.width, reference.image.height)
                crop = full.analyse(data, replace(OPTIONS, region=region), StageTimer())
                refined = cosine_distance(vector, subject(crop)[0])
            same = iou(box, other_box) > 0.5
            pairs.append(Pair(side, height, cosine_distance(vector, other), same, refined))
    return pairs, photos


def report(pairs: list[Pair], photos: int, sides: list[int]) -> str:
    lines = [
        f"{photos} real photos of faces-dev with a face; for each photo larger than the side, "
        "the subject found by RetinaFace at that side against the one found at 1024 px "
        "(`detect_max_side`), both embedded by MobileFaceNet from the full-resolution photo. "
        "height: the subject's height in pixels at the side. distance: cosine distance between "
        f"the two vectors (MobileFaceNet's 1:1 threshold: 0.64). Bulk enrollment "
        f"detects a subject under {MIN_BULK_FACE} px (`MIN_BULK_FACE`) again at the 1024 px "
        "scale on a crop around it (one face size of context on each side, the crop's corner "
        "on the detector's 32 px grid): after the crop, the distance of that vector. "
        "other subject: photos where the smaller side chose another face or found none (left "
        "out of the distances). "
        f"Load average: {load_average()}.",
        "",
        "| side | face height px | photos | other subject | median distance | p90 | max "
        "| after the crop: median | p90 | max |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for side in sides:
        for low, high in BANDS:
            band = [p for p in pairs if p.side == side and low <= p.height < high]
            same = [p.distance for p in band if p.same_face]
            if not band:
                continue
            cells = (
                f"{np.median(same):.3f} | {np.percentile(same, 90):.3f} | {max(same):.3f}"
                if same
                else "- | - | -"
            )
            crops = [p.refined for p in band if p.same_face and not np.isnan(p.refined)]
            cells += (
                f" | {np.median(crops):.4f} | {np.percentile(crops, 90):.4f} | {max(crops):.4f}"
                if crops
                else " | - | - | -"
            )
            label = f"{low}-{high}" if high < 10_000 else f"{low}+"
            lines.append(f"| {side} | {label} | {len(band)} | {len(band) - len(same)} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sides", default="480,384,320,256")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    sides = [int(s) for s in args.sides.split(",")]
    pairs, photos = measure(sides)
    body = report(pairs, photos, sides)
    print(body)
    if not args.no_write:
        write_section("bulk_side", "Bulk enrollment's detector side: vector drift", body)


if __name__ == "__main__":
    main()
