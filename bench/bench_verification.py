"""1:1 verification accuracy of every installed embedder on a folder of labelled photos.

Input: a manifest CSV ``path,identity[,source,kind,notes]`` (paths relative to the CSV) or a folder
of ``person/*.jpg``; by default ``../shared/faces-dev/manifest.csv`` when it exists. Spoof rows and
rows without an identity are skipped; images sharing a ``dup_group=`` note (resized copies,
re-encodes, derived crops of one photo) are collapsed to the largest one, so a same-person pair is
always two independent photos.

Pipeline per image, as in the service: decode → RetinaFace (or ``--detector hog``) on the image
scaled to ≤ 1024 px → largest face scoring ≥ 0.9 → each embedder. Pairs: every same-identity
pair, and every (``--pairs full``) or an equal number of seeded random (``--pairs balanced``)
different-identity pairs.

Run from the repository root::

    .venv/bin/python bench/bench_verification.py [--manifest CSV | --folder DIR]
        [--model-dir DIR] [--detector hog] [--variants] [--num-jitters N]
        [--show-errors] [--no-write]
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import random
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(REPO))

from bench.report import percentile, write_section  # noqa: E402
from facerec.config import LimitSettings  # noqa: E402
from facerec.domain.detection import DetectOptions, detect_downscaled  # noqa: E402
from facerec.domain.selection import subject_of  # noqa: E402
from facerec.errors import FaceRecError  # noqa: E402
from facerec.inference.base import FaceDetector, FaceEmbedder, RuntimeOptions  # noqa: E402
from facerec.inference.detectors.hog import HogDetector  # noqa: E402
from facerec.inference.detectors.retinaface import RetinaFaceDetector  # noqa: E402
from facerec.inference.embedders.dlib_resnet import DlibResNetEmbedder  # noqa: E402
from facerec.inference.embedders.onnx_embedder import (  # noqa: E402
    MOBILEFACENET_SPEC,
    OnnxArcFaceEmbedder,
)
from facerec.inference.images import decode_image  # noqa: E402
from facerec.inference.types import ImageBGR  # noqa: E402
from facerec.values import Detection  # noqa: E402

DEFAULT_MANIFEST = REPO.parent / "shared" / "faces-dev" / "manifest.csv"
DEFAULT_MODEL_DIRS = (REPO.parent / "shared" / "models", REPO / "data" / "models")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
DETECT_MAX_SIDE = 1024
DETECTORS: dict[str, Callable[[], FaceDetector]] = {
    "retinaface": RetinaFaceDetector,
    "hog": HogDetector,
}
FMR_TARGETS = (1e-1, 1e-2, 1e-3)
_DUP = re.compile(r"dup_group=(\w+)")
NOTES = """\
Reading the figures: faces-dev is small (120 photos after de-duplication), so accuracy here only
shows the pipeline works and where the thresholds sit; the product bars are LFW 6000 pairs:
98.98% for the `face_recognition` library's dlib pipeline, 99.25% for RetinaFace + MobileFaceNet
with mirror sum. Thresholds are chosen to generalise, not to fit these pairs: dlib keeps its
published 0.6 (Gaussian fits to these distances cross at 0.60-0.61); MobileFaceNet uses 0.64,
inside this set's zero-error gap (0.61-0.66) and between the Gaussian crossing here (0.61) and
upstream's LFW threshold (70.4° = 0.66). The similarity scale puts the median same-person distance
at similarity ≈ 0.9."""


@dataclass(frozen=True)
class Photo:
    path: Path
    identity: str
    dup_group: str | None = None


@dataclass
class Face:
    photo: Photo
    image: ImageBGR
    detection: Detection


@dataclass
class Result:
    name: str
    same: NDArray[np.float64]
    different: NDArray[np.float64]
    threshold: float
    latencies_ms: list[float]
    errors: list[tuple[float, str, str, bool]] = field(default_factory=list)


def read_manifest(manifest: Path) -> list[Photo]:
    photos: list[Photo] = []
    with manifest.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            identity = (row.get("identity") or "").strip()
            if not identity or (row.get("kind") or "real").strip() == "spoof":
                continue
            match = _DUP.search(row.get("notes") or "")
            photos.append(
                Photo(manifest.parent / row["path"], identity, match.group(1) if match else None)
            )
    return photos


def read_folder(folder: Path) -> list[Photo]:
    return [
        Photo(path, person.name)
        for person in sorted(p for p in folder.iterdir() if p.is_dir())
        for path in sorted(person.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]


def subject_face(detector: FaceDetector, image: ImageBGR) -> Detection | None:
    """The face the service would pick: its resize policy, then the most prominent face
    (``facerec.domain.selection``)."""
    options = DetectOptions(conf_threshold=0.5, iou_threshold=0.4, max_faces=50)
    subject = subject_of(image, detect_downscaled(detector, image, DETECT_MAX_SIDE, options))
    return subject.detection if subject is not None else None


def load_faces(photos: list[Photo], detector_name: str) -> tuple[list[Face], list[str]]:
    """Largest face of each photo, one photo per duplicate group; and the photos without a face."""
    detector = DETECTORS[detector_name]()
    detector.load(RuntimeOptions())
    limits = LimitSettings()
    faces: list[Face] = []
    missing: list[str] = []
    for photo in photos:
        try:
            image = decode_image(photo.path.read_bytes(), limits).pixels
        except (OSError, FaceRecError) as exc:
            missing.append(f"{photo.path} ({exc})")
            continue
        detection = subject_face(detector, image)
        if detection is None:
            missing.append(str(photo.path))
            continue
        faces.append(Face(photo, image, detection))
    return collapse_duplicates(faces), missing


def collapse_duplicates(faces: list[Face]) -> list[Face]:
    """One face per duplicate group (the largest image), so pairs are independent photos."""
    best: dict[str, Face] = {}
    kept: list[Face] = []
    for face in faces:
        group = face.photo.dup_group
        if group is None:
            kept.append(face)
        elif group not in best or face.image.size > best[group].image.size:
            best[group] = face
    return kept + list(best.values())


def make_pairs(
    faces: list[Face], mode: str, seed: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    same: list[tuple[int, int]] = []
    different: list[tuple[int, int]] = []
    for i in range(len(faces)):
        for j in range(i + 1, len(faces)):
            bucket = same if faces[i].photo.identity == faces[j].photo.identity else different
            bucket.append((i, j))
    if mode == "balanced" and len(different) > len(same):
        different = sorted(random.Random(seed).sample(different, len(same)))
    return same, different


def embed_all(embedder: FaceEmbedder, faces: list[Face]) -> tuple[NDArray[np.float32], list[float]]:
    vectors: list[NDArray[np.float32]] = []
    latencies: list[float] = []
    for face in faces:
        start = time.perf_counter()
        vectors.append(embedder.embed(face.image, [face.detection])[0])
        latencies.append((time.perf_counter() - start) * 1000.0)
    return np.stack(vectors), latencies


def distances(
    embedder: FaceEmbedder, vectors: NDArray[np.float32], pairs: list[tuple[int, int]]
) -> NDArray[np.float64]:
    return np.array([embedder.distance(vectors[i], vectors[j]) for i, j in pairs], np.float64)


def rates(result: Result, threshold: float) -> tuple[float, float]:
    """(FMR, FNMR) when ``distance < threshold`` means "same person"."""
    fmr = float(np.mean(result.different < threshold)) if result.different.size else 0.0
    fnmr = float(np.mean(result.same >= threshold)) if result.same.size else 0.0
    return fmr, fnmr


def accuracy(result: Result, threshold: float) -> tuple[float, float]:
    """(accuracy over the pairs used, balanced accuracy = 1 - (FMR + FNMR) / 2)."""
    fmr, fnmr = rates(result, threshold)
    n_same, n_diff = result.same.size, result.different.size
    correct = (1 - fnmr) * n_same + (1 - fmr) * n_diff
    return correct / max(1, n_same + n_diff), 1.0 - (fmr + fnmr) / 2.0


def best_threshold(result: Result) -> tuple[float, float]:
    """The threshold maximising balanced accuracy (midpoint between observed distances)."""
    values = np.unique(np.concatenate([result.same, result.different]))
    candidates = np.concatenate(
        [[values[0] - 1e-6], (values[1:] + values[:-1]) / 2, [values[-1] + 1e-6]]
    )
    scored = [
        (accuracy(result, float(t))[1], -abs(float(t) - result.threshold), float(t))
        for t in candidates
    ]
    balanced, _, threshold = max(scored)
    return threshold, balanced


def roc_row(result: Result, target: float) -> str:
    n_diff = result.different.size
    if n_diff * target < 1:
        return f"| {target:g} | n/a ({n_diff} different pairs) | |"
    ordered = np.sort(result.different)
    allowed = math.floor(target * n_diff)
    threshold = float(ordered[allowed]) if allowed < n_diff else float("inf")
    tmr = float(np.mean(result.same < threshold))
    return f"| {target:g} | {tmr:.2%} | {threshold:.3f} |"


def evaluate(
    name: str,
    embedder: FaceEmbedder,
    faces: list[Face],
    pairs: tuple[list[tuple[int, int]], list[tuple[int, int]]],
) -> Result:
    embedder.load(RuntimeOptions())
    embed_all(embedder, faces[:2])  # warm-up
    vectors, latencies = embed_all(embedder, faces)
    same_pairs, diff_pairs = pairs
    result = Result(
        name,
        distances(embedder, vectors, same_pairs),
        distances(embedder, vectors, diff_pairs),
        embedder.distance_threshold,
        latencies,
    )
    for values, index_pairs, is_same in (
        (result.same, same_pairs, True),
        (result.different, diff_pairs, False),
    ):
        for value, (i, j) in zip(values, index_pairs, strict=True):
            if (value >= result.threshold) == is_same:
                result.errors.append(
                    (float(value), str(faces[i].photo.path), str(faces[j].photo.path), is_same)
                )
    return result


def report(result: Result, embedder: FaceEmbedder) -> str:
    fmr, fnmr = rates(result, result.threshold)
    acc, balanced = accuracy(result, result.threshold)
    best_t, best_acc = best_threshold(result)
    median_same = float(np.median(result.same)) if result.same.size else float("nan")
    median_diff = float(np.median(result.different)) if result.different.size else float("nan")
    suggested_scale = (result.threshold - median_same) / math.log(9.0)
    lines = [
        f"### {result.name} ({embedder.metric} distance, threshold {result.threshold:g}, "
        f"similarity scale {embedder.similarity_scale:g})",
        "",
        f"- pairs: {result.same.size} same-person, {result.different.size} different-person",
        f"- accuracy at the calibrated threshold: **{balanced:.2%}** balanced "
        f"(1 - (FMR+FNMR)/2); {acc:.2%} over all pairs",
        f"- FMR {fmr:.3%} ({round(fmr * result.different.size)} false matches), "
        f"FNMR {fnmr:.2%} ({round(fnmr * result.same.size)} false non-matches)",
        f"- best threshold on this set: {best_t:.3f} → {best_acc:.2%} balanced (optimistic: "
        "chosen on the same pairs)",
        f"- distances: same median {median_same:.3f} (p95 "
        f"{percentile(list(result.same), 95):.3f}), different median {median_diff:.3f} (p5 "
        f"{percentile(list(result.different), 5):.3f}); similarity() of the same-person median "
        f"{embedder.similarity(median_same):.2f}, of the different-person median "
        f"{embedder.similarity(median_diff):.2f} (scale giving 0.9 at the same median: "
        f"{suggested_scale:.3f})",
        f"- embedding latency per image (align + embed, one face): p50 "
        f"{percentile(result.latencies_ms, 50):.1f} ms, p90 "
        f"{percentile(result.latencies_ms, 90):.1f} ms",
        "",
        "| FMR | TMR | threshold |",
        "|---|---|---|",
        *(roc_row(result, target) for target in FMR_TARGETS),
        "",
    ]
    return "\n".join(lines)


def find_model_dir(explicit: Path | None) -> Path | None:
    candidates = (explicit,) if explicit else DEFAULT_MODEL_DIRS
    for directory in candidates:
        spec = MOBILEFACENET_SPEC
        if directory and (directory / spec.pack / spec.file_name).is_file():
            return directory
    return None


def build_embedders(args: argparse.Namespace) -> list[tuple[str, FaceEmbedder]]:
    embedders: list[tuple[str, FaceEmbedder]] = [
        ("dlib_resnet", DlibResNetEmbedder(num_jitters=args.num_jitters))
    ]
    if args.variants:
        embedders += [
            (
                "dlib_resnet [alignment=shape_predictor]",
                DlibResNetEmbedder(alignment="shape_predictor", num_jitters=args.num_jitters),
            ),
            ("dlib_resnet [num_jitters=5]", DlibResNetEmbedder(num_jitters=5)),
        ]
    model_dir = find_model_dir(args.model_dir)
    if model_dir is not None:
        embedders.append(("mobilefacenet", OnnxArcFaceEmbedder(MOBILEFACENET_SPEC, model_dir)))
        if args.variants:
            no_mirror = replace(MOBILEFACENET_SPEC, mirror_sum=False)
            embedders.append(
                ("mobilefacenet [no mirror sum]", OnnxArcFaceEmbedder(no_mirror, model_dir))
            )
    else:
        print("mobilefacenet: model file not found (use --model-dir); skipped")
    return embedders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--manifest", type=Path, help="CSV path,identity[,source,kind,notes]")
    source.add_argument("--folder", type=Path, help="folder of person/*.jpg")
    parser.add_argument("--model-dir", type=Path, help="model packs (<dir>/mobilefacenet/...)")
    parser.add_argument("--pairs", choices=("full", "balanced"), default="full")
    parser.add_argument("--detector", choices=sorted(DETECTORS), default="retinaface")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-jitters", type=int, default=0, help="dlib jitters (0 = none)")
    parser.add_argument(
        "--variants",
        action="store_true",
        help="also run dlib with the shape-predictor alignment and with 5 jitters, and "
        "MobileFaceNet without the mirror sum",
    )
    parser.add_argument("--show-errors", action="store_true", help="list misjudged pairs")
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args(argv)

    if args.folder:
        photos, source_name = read_folder(args.folder), str(args.folder)
    else:
        manifest = args.manifest or DEFAULT_MANIFEST
        if not manifest.is_file():
            parser.error(f"no manifest at {manifest}: pass --manifest or --folder")
        photos, source_name = read_manifest(manifest), str(manifest)

    faces, missing = load_faces(photos, args.detector)
    identities: defaultdict[str, int] = defaultdict(int)
    for face in faces:
        identities[face.photo.identity] += 1
    pairs = make_pairs(faces, args.pairs, args.seed)
    header = (
        f"Data: `{source_name}`: {len(photos)} labelled real photos → {len(faces)} after "
        f"collapsing duplicates, {len(identities)} identities "
        f"({sum(1 for n in identities.values() if n > 1)} with ≥ 2 photos); "
        f"no face found in {len(missing)}. Detector: {args.detector} (most prominent face, "
        f"image ≤ {DETECT_MAX_SIDE} px). Pairs: {args.pairs}. "
        'A pair is judged "same" when distance < threshold.'
    )
    print(header)
    for path in missing:
        print(f"  no face: {path}")
    load = os.getloadavg()[0]
    timing = (
        f"Latency: one face per call, after a warm-up; load average {load:.1f} on "
        f"{os.cpu_count()} cores when the run started (other work on the machine makes the "
        "figures noisy)."
    )
    sections = [header, "", timing, "", NOTES, ""]
    for name, embedder in build_embedders(args):
        if not embedder.is_installed():
            print(f"{name}: not installed: {embedder.not_installed_reason()}")
            continue
        result = evaluate(name, embedder, faces, pairs)
        text = report(result, embedder)
        print(text)
        sections.append(text)
        if args.show_errors:
            for value, a, b, is_same in sorted(result.errors):
                kind = "false non-match" if is_same else "false match"
                print(f"  {kind} {value:.3f}: {a} ~ {b}")
    if not args.no_write:
        write_section("verification", "Face verification (1:1) accuracy", "\n".join(sections))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
