"""How far a bilinear detector resize moves landmarks and vectors from the area filter's, by scale.

``resize_for_detector`` shrinks a photo to the detector's side bilinearly down to
``LINEAR_DOWN_TO`` of its size and by pixel area below (the area filter costs 5-10x as much).
Where the bound sits decides which photos pay for the area filter: with the reduced JPEG decode
a photo reaches the detector at 0.5-1.0 of its decoded size, so every bound between 0.5 and 1
covers some sizes (a 1920 x 2250 portrait decoded at 1/2 meets SCRFD's 640 px at 0.57).

For each scale, scenes are made at the size the detector then shrinks by exactly that scale (at
0.5 a JPEG would be decoded at half size instead, with no resize left to do):
every real photo of ``../shared/faces-dev`` at least that large, shrunk to it by pixel area (so
its detail reaches the Nyquist limit: the hardest case for bilinear), and the smaller photos
(face chips) tiled at their own resolution on gray canvases of that size; each JPEG quality 92.
Each scene goes through the service's analysis (decode, detect, align, embed) three times: with
the area filter, with bilinear, and with the area filter on the same scene moved one pixel right
and down (the reference: how much a face's vector moves when the camera moves one pixel). Faces
are matched to the area run's by IoU >= 0.5. Landmark shift: the mean distance of the five
points, over the inter-ocular distance. Vector distance: the embedder's own (cosine, or L2 for
dlib), with its 1:1 threshold in the header.

    python bench/bench_resize.py                        # scales 0.51-0.65, SCRFD and RetinaFace
    python bench/bench_resize.py --scales 0.55,0.6 --detectors scrfd_500m --no-write
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402

from bench.bench_sizes import model_dir  # noqa: E402
from bench.report import load_average, percentile, write_section  # noqa: E402
from facerec.config import Settings  # noqa: E402
from facerec.domain.analysis import Analyzer  # noqa: E402
from facerec.domain.detection import DetectionService  # noqa: E402
from facerec.domain.probes import AnalysisOptions, FaceChoice, FaceProbe  # noqa: E402
from facerec.domain.timing import StageTimer  # noqa: E402
from facerec.domain.tracking import iou  # noqa: E402
from facerec.errors import FaceRejectedError  # noqa: E402
from facerec.inference.base import FaceEmbedder  # noqa: E402
from facerec.inference.detectors import decoding  # noqa: E402
from facerec.inference.manager import ModelManager  # noqa: E402
from facerec.inference.registry import build_models  # noqa: E402
from facerec.values import BBox  # noqa: E402

FACES_DEV = REPO.parent / "shared" / "faces-dev"
SCALES = (0.51, 0.53, 0.55, 0.57, 0.6, 0.65)
DETECTORS = ("scrfd_500m", "retinaface")
EMBEDDERS = ("dlib_resnet", "mobilefacenet", "w600k_mbf")
CHIP_MAX = 320  # photos no larger than this are tiled on canvases (face chips)
GAP = 24  # gray pixels around each tiled photo
QUALITY = 92
FILTERS = {"area": 1.01, "bilinear": 0.0}  # LINEAR_DOWN_TO for each (every scale here is < 1)
FAR = 0.1  # a vector moved by more than this share of its 1:1 threshold is counted
SHIFT = "1 px shift"  # the reference: the same scene moved one pixel, area filter both times


@dataclass
class Drift:
    """What one scale did to one detector's faces."""

    faces: int = 0
    unmatched: int = 0  # faces of the area run the bilinear run did not find (IoU < 0.5)
    landmarks: dict[str, list[float]] = field(default_factory=dict)  # variant -> shifts
    vectors: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (emb, variant)

    def record(
        self,
        runs: dict[str, list[FaceProbe]],
        embedder: str,
        distance: Callable[[np.ndarray, np.ndarray], float],
        count: bool,
    ) -> None:
        """One scene's runs under ``embedder``; ``count``: its faces and landmarks too (the
        detector's, the same whichever embedder follows)."""
        for face in runs["area"]:
            self.faces += count
            for variant in ("bilinear", SHIFT):
                moved = 1.0 if variant == SHIFT else 0.0
                other = matched(face, runs[variant], moved)
                if other is None:
                    self.unmatched += count and variant == "bilinear"
                    continue
                if count:
                    shift = landmark_shift(face, other, moved)
                    self.landmarks.setdefault(variant, []).append(shift)
                key = (embedder, variant)
                self.vectors.setdefault(key, []).append(distance(face.vector, other.vector))


@contextmanager
def linear_down_to(bound: float) -> Iterator[None]:
    saved = decoding.LINEAR_DOWN_TO
    decoding.LINEAR_DOWN_TO = bound
    try:
        yield
    finally:
        decoding.LINEAR_DOWN_TO = saved


def real_photos() -> list[Image.Image]:
    with (FACES_DEV / "manifest.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["kind"] == "real"]
    return [Image.open(FACES_DEV / r["path"]).convert("RGB") for r in rows]


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=QUALITY)
    return buffer.getvalue()


def shifted(image: Image.Image) -> Image.Image:
    """``image`` moved one pixel right and down (edge pixels repeated)."""
    pixels = np.asarray(image)
    moved = np.pad(pixels, ((1, 0), (1, 0), (0, 0)), mode="edge")[:-1, :-1]
    return Image.fromarray(moved)


def scenes(photos: list[Image.Image], longest: int) -> list[Image.Image]:
    """Photos at least ``longest`` px shrunk to it by area; the small ones tiled on canvases."""
    out: list[Image.Image] = []
    chips: list[Image.Image] = []
    for photo in photos:
        side = max(photo.size)
        if side <= CHIP_MAX:
            chips.append(photo)
        elif side >= longest:
            factor = longest / side
            size = (max(1, round(photo.width * factor)), max(1, round(photo.height * factor)))
            out.append(photo.resize(size, Image.Resampling.BOX))
    cell = CHIP_MAX + GAP
    per_row = longest // cell
    per_canvas = per_row * per_row
    for first in range(0, len(chips), per_canvas):
        canvas = Image.new("RGB", (longest, longest), (128, 128, 128))
        for k, chip in enumerate(chips[first : first + per_canvas]):
            row, col = divmod(k, per_row)
            canvas.paste(chip, (col * cell + GAP, row * cell + GAP))
        out.append(canvas)
    return out


def landmark_shift(a: FaceProbe, b: FaceProbe, moved: float) -> float:
    """Mean distance of ``b``'s five points from ``a``'s (``b``'s scene moved by ``moved`` px),
    over ``a``'s inter-ocular distance."""
    pa, pb = a.detection.landmarks, b.detection.landmarks
    assert pa is not None and pb is not None
    ocular = float(np.linalg.norm(pa[0] - pa[1])) or 1.0
    return float(np.linalg.norm(pa - (pb - moved), axis=1).mean()) / ocular


def matched(reference: FaceProbe, others: list[FaceProbe], moved: float) -> FaceProbe | None:
    """The face of ``others`` (their scene moved by ``moved`` px) over ``reference``."""
    box = reference.detection.bbox
    for other in others:
        o = other.detection.bbox
        if iou(box, BBox(o.x1 - moved, o.y1 - moved, o.x2 - moved, o.y2 - moved)) >= 0.5:
            return other
    return None


def analyse(analyzer: Analyzer, data: bytes, options: AnalysisOptions) -> list[FaceProbe]:
    try:
        return analyzer.analyse(data, options, StageTimer()).probes
    except FaceRejectedError:
        return []


def measure(scales: list[float], detectors: list[str], embedders: list[str]) -> str:
    tmp = Path(tempfile.mkdtemp(prefix="facerec-bench-resize-"))
    settings = Settings(_env_file=None, models={"model_dir": str(model_dir(tmp / "models"))})
    models = ModelManager(build_models(settings), settings.models)
    service = DetectionService(models, settings.limits)
    analyzer = Analyzer(models, service, settings.liveness.threshold)
    photos = real_photos()
    drifts: dict[tuple[str, float], Drift] = {}
    for detector in detectors:
        side = service.detect_side(detector)
        for scale in scales:
            drift = drifts.setdefault((detector, scale), Drift())
            for scene in scenes(photos, round(side / scale)):
                data, moved = jpeg(scene), jpeg(shifted(scene))
                for embedder in embedders:
                    options = AnalysisOptions(detector, embedder, FaceChoice.ALL, max_faces=100)
                    runs: dict[str, list[FaceProbe]] = {}
                    for variant, bound in FILTERS.items():
                        with linear_down_to(bound):
                            runs[variant] = analyse(analyzer, data, options)
                    with linear_down_to(FILTERS["area"]):
                        runs[SHIFT] = analyse(analyzer, moved, options)
                    with models.use(embedder, FaceEmbedder) as model:
                        drift.record(runs, embedder, model.distance, embedder == embedders[0])
            print(f"{detector} at {scale}: {drift.faces} faces", flush=True)
    return report(drifts, models, detectors, scales, embedders)


def cells(values: list[float], far: float | None = None) -> str:
    """median / p95 / max, and with ``far`` how many values exceed it."""
    if not values:
        return "-"
    text = " / ".join(
        f"{v:.4f}" for v in (percentile(values, 50), percentile(values, 95), max(values))
    )
    return text if far is None else f"{text} ({sum(v > far for v in values)})"


def report(
    drifts: dict[tuple[str, float], Drift],
    models: ModelManager,
    detectors: list[str],
    scales: list[float],
    embedders: list[str],
) -> str:
    thresholds, far = [], {}
    for name in embedders:
        with models.use(name, FaceEmbedder) as model:
            thresholds.append(f"{name} {model.metric} {model.distance_threshold:.3f}")
            far[name] = model.distance_threshold * FAR
    lines = [
        "Each cell: median / p95 / max over the faces the area run found (unmatched: not found "
        "by the bilinear run at IoU >= 0.5). Landmarks: mean shift of the five points over the "
        "inter-ocular distance. Vectors: the embedder's distance (1:1 thresholds: "
        f"{', '.join(thresholds)}); in brackets, how many faces moved by more than {FAR:g} of "
        "the threshold. Reference rows: the same scene moved one pixel, area filter both "
        f"times. Load average: {load_average()}.",
        "",
    ]
    for detector in detectors:
        header = "| scale | faces | unmatched | compared with | landmarks |"
        rule = "|---:|---:|---:|---|---|"
        for name in embedders:
            header += f" {name} |"
            rule += "---|"
        lines += [f"**{detector}**", "", header, rule]
        for scale in scales:
            drift = drifts[(detector, scale)]
            for variant in ("bilinear", SHIFT):
                row = (
                    f"| {scale:.2f} | {drift.faces} | {drift.unmatched} | {variant} "
                    f"| {cells(drift.landmarks.get(variant, []))} |"
                )
                for name in embedders:
                    row += f" {cells(drift.vectors.get((name, variant), []), far[name])} |"
                lines.append(row)
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default=",".join(str(s) for s in SCALES))
    parser.add_argument("--detectors", default=",".join(DETECTORS))
    parser.add_argument("--embedders", default=",".join(EMBEDDERS))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    body = measure(
        [float(s) for s in args.scales.split(",")],
        args.detectors.split(","),
        args.embedders.split(","),
    )
    print(body)
    if not args.no_write:
        write_section("resize", "Detector resize: bilinear against the area filter, by scale", body)


if __name__ == "__main__":
    main()
