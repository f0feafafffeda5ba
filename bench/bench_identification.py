"""Open-set identification (1:N) of every installed embedder on a folder of labelled photos.

Photos, duplicates and spoofs as in ``bench_verification.py`` (its helpers are reused). Pipeline
per photo, as in the service: decode → RetinaFace with the service's resize policy → quality of
every face → the subject face (``selection.rank_faces(...)[0]``) → each embedder. Embedders are the
service's own: ``build_models`` on a temporary model folder whose packs are links to the reference
weights in ``../shared/models``; every installed model whose task is embedding is measured.

Protocol, for R seeded rounds: one random photo per identity is the gallery; genuine probes are the
other photos of those identities; strangers are leave-one-identity-out (each identity removed from
the gallery in turn, all its photos probing the rest), so every photo is a stranger once a round.
A probe is missed when its nearest gallery face is someone else or is not closer than the
threshold; a stranger is named when its nearest gallery face is closer than the threshold.

``--write-calibration`` fits :func:`facerec.inference.calibration.fit_calibration` on every pair
of photos of different identities and writes ``src/facerec/inference/calibrations.json``.

Run from the repository root::

    .venv/bin/python bench/bench_identification.py [--manifest CSV | --folder DIR]
        [--rounds 10] [--seed 0] [--write-calibration] [--no-write]
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(REPO))

from bench.bench_verification import (  # noqa: E402
    DEFAULT_MANIFEST,
    Face,
    Photo,
    Result,
    accuracy,
    collapse_duplicates,
    embed_all,
    make_pairs,
    rates,
    read_folder,
    read_manifest,
)
from bench.report import command, percentile, write_section  # noqa: E402
from facerec.config import LimitSettings, ModelSettings, Settings  # noqa: E402
from facerec.domain.detection import DetectOptions, detect_downscaled  # noqa: E402
from facerec.domain.selection import competing_faces, rank_faces  # noqa: E402
from facerec.errors import FaceRecError  # noqa: E402
from facerec.inference.base import FaceDetector, FaceEmbedder, RuntimeOptions  # noqa: E402
from facerec.inference.calibration import (  # noqa: E402
    CALIBRATIONS_FILE,
    Calibration,
    comparison_fmr,
    dump_calibrations,
    fit_calibration,
    load_calibrations,
    threshold_for_fpir,
)
from facerec.inference.images import decode_image  # noqa: E402
from facerec.inference.quality import assess  # noqa: E402
from facerec.inference.registry import build_models  # noqa: E402
from facerec.inference.types import ModelTask  # noqa: E402
from facerec.values import Detection  # noqa: E402

SHARED_MODELS = REPO.parent / "shared" / "models"
# <model_dir>/<pack>/<file> → the reference weights under ../shared/models.
PACK_LINKS = {
    "mobilefacenet/mobilefacenet_foamliu_opset18.onnx": "mobilefacenet/"
    "mobilefacenet_foamliu_opset18.onnx",
    "w600k_mbf/w600k_mbf.onnx": "arcface/w600k_mbf_fp32_from_int8.onnx",
    "w600k_mbf_int8/w600k_mbf_int8.onnx": "arcface/w600k_mbf_int8.onnx",
}
FPIR_TARGETS = (1e-2, 1e-3)
GALLERY_SIZES = (1_000, 10_000, 100_000)
SUGGESTED_FMR = 1e-3
LABELLED_SET = "labelled, one identity"
GROUP_SET = "unlabelled group shots (multi_face=1)"
UNLABELLED_SET = "unlabelled, one person"
NOTES = """\
Reading the figures: faces-dev has only 27 identities, so a stranger meets at most 26 gallery
faces and the empirical columns (threshold chosen on this set's own stranger scores) are
optimistic. The calibrated columns set the threshold from each model's calibration
(`src/facerec/inference/calibrations.json`) for a stranger meeting 1k / 10k / 100k faces, capped
at the model's 1:1 threshold, and give the share of faces-dev's genuine probes missed there: what
a large gallery would see if the calibration's exponential tail holds. "extrap." marks a
per-comparison FMR below one impostor pair in those measured: the threshold comes from the tail
model alone, which errs towards "unknown"."""


@dataclass
class Subject:
    """A photo's subject face and what the two enrollment rules say about the photo."""

    face: Face
    detections: int  # faces RetinaFace found (score >= 0.5)
    refused_before: bool  # the old rule, see refused_by_old_rule
    refused_after: bool  # selection.competing_faces is not empty


@dataclass
class Identification:
    """Pooled over rounds: each genuine probe's (correct at rank 1, best distance), and each
    stranger's best distance."""

    correct: NDArray[np.bool_]
    genuine_best: NDArray[np.float64]
    stranger_best: NDArray[np.float64]

    def fnir(self, threshold: float) -> float:
        return float(np.mean(~self.correct | (self.genuine_best >= threshold)))

    def empirical_threshold(self, fpir: float) -> float:
        """The threshold naming at most ``fpir`` of this set's strangers."""
        ordered = np.sort(self.stranger_best)
        allowed = int(fpir * ordered.size)
        return float(ordered[allowed]) if allowed < ordered.size else float("inf")


def unlabelled_photos(manifest: Path) -> dict[Path, str]:
    """Real photos without an identity (enrollment refusals only), by photo set."""
    found: dict[Path, str] = {}
    with manifest.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if (row.get("identity") or "").strip() or (row.get("kind") or "real") == "spoof":
                continue
            group = "multi_face=1" in (row.get("notes") or "")
            found[manifest.parent / row["path"]] = GROUP_SET if group else UNLABELLED_SET
    return found


def link_packs(shared: Path, model_dir: Path) -> None:
    for target, source in PACK_LINKS.items():
        if (shared / source).is_file():
            (model_dir / target).parent.mkdir(parents=True, exist_ok=True)
            (model_dir / target).symlink_to(shared / source)


# The enrollment rule before the subject was chosen by prominence: confident faces (score >= 0.9;
# all faces when none is) by area, refused when the second is over half the first's area.
OLD_CONFIDENT, OLD_DOMINANCE = 0.9, 0.5


def refused_by_old_rule(faces: list[Detection]) -> bool:
    confident = [f for f in faces if f.score >= OLD_CONFIDENT] or faces
    areas = sorted((f.bbox.area for f in confident), reverse=True)
    return len(areas) > 1 and areas[1] > OLD_DOMINANCE * areas[0]


def analyse(photos: list[Photo], detector: FaceDetector) -> tuple[list[Subject], list[str]]:
    """Each photo's subject face and refusal verdicts; and the photos without a face."""
    limits = LimitSettings()
    subjects: list[Subject] = []
    missing: list[str] = []
    for photo in photos:
        try:
            image = decode_image(photo.path.read_bytes(), limits).pixels
        except (OSError, FaceRecError) as exc:
            missing.append(f"{photo.path} ({exc})")
            continue
        found = detect_downscaled(detector, image, limits.detect_max_side, DetectOptions())
        ranked = rank_faces(
            found, [assess(image, f) for f in found], image.shape[1], image.shape[0]
        )
        if not ranked:
            missing.append(str(photo.path))
            continue
        before = refused_by_old_rule(found)
        face = Face(photo, image, ranked[0].detection)
        subjects.append(Subject(face, len(found), before, bool(competing_faces(ranked))))
    return subjects, missing


def distance_matrix(embedder: FaceEmbedder, vectors: NDArray[np.float32]) -> NDArray[np.float64]:
    n = len(vectors)
    matrix = np.zeros((n, n), np.float64)
    for i in range(n):
        for j in range(i + 1, n):
            matrix[i, j] = matrix[j, i] = embedder.distance(vectors[i], vectors[j])
    return matrix


def identify(
    matrix: NDArray[np.float64], labels: list[str], rounds: int, seed: int
) -> Identification:
    by_identity: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        by_identity.setdefault(label, []).append(index)
    correct: list[bool] = []
    genuine: list[float] = []
    strangers: list[float] = []
    for r in range(rounds):
        rng = random.Random(seed * 1_000 + r)
        gallery = {label: rng.choice(indices) for label, indices in by_identity.items()}
        columns = np.array(list(gallery.values()))
        owners = list(gallery)
        for label, indices in by_identity.items():
            others = np.array(
                [c for c, owner in zip(columns, owners, strict=True) if owner != label]
            )
            for probe in indices:
                if others.size:
                    strangers.append(float(matrix[probe, others].min()))
                if probe == gallery[label]:
                    continue
                row = matrix[probe, columns]
                best = int(np.argmin(row))
                correct.append(owners[best] == label)
                genuine.append(float(row[best]))
    return Identification(np.array(correct), np.array(genuine), np.array(strangers))


def equal_error(result: Result) -> tuple[float, float]:
    """(threshold, rate) where max(FMR, FNMR) is least; the middle of a tied range."""
    values = np.unique(np.concatenate([result.same, result.different]))
    candidates = np.concatenate([[values[0] - 1e-6], (values[1:] + values[:-1]) / 2])
    worst = np.array([max(rates(result, float(t))) for t in candidates])
    tied = candidates[worst == worst.min()]
    return float((tied[0] + tied[-1]) / 2), float(worst.min())


def calibrated_cell(
    ident: Identification, calibration: Calibration, ceiling: float, fpir: float, n: int
) -> str:
    threshold = threshold_for_fpir(calibration, fpir, n, ceiling=ceiling)
    notes = []
    if calibration.is_extrapolated(comparison_fmr(fpir, n)):
        notes.append("extrap.")
    if threshold >= ceiling:
        notes.append("1:1 cap")
    tag = f", {' '.join(notes)}" if notes else ""
    return f"{ident.fnir(threshold):.1%} (t={threshold:.3f}{tag})"


def refusal_section(subjects: list[Subject], root: Path, sets: dict[Path, str]) -> list[str]:
    sources: Counter[str] = Counter()
    several: Counter[str] = Counter()
    before: Counter[str] = Counter()
    after: Counter[str] = Counter()
    for s in subjects:
        source = sets.get(s.face.photo.path, LABELLED_SET)
        sources[source] += 1
        several[source] += s.detections > 1
        before[source] += s.refused_before
        after[source] += s.refused_after
    lines = [
        "### Enrollment refusals (`multiple_faces`)",
        "",
        "Before: largest confident face, refused when the next is more than half its area. "
        "After: `selection.competing_faces` (another confident, good-quality face of at least "
        "0.75 x the subject's side and prominence).",
        "",
        "| photo set | photos with a face | with ≥ 2 faces (score ≥ 0.5) | refused before | "
        "refused after |",
        "|---|---|---|---|---|",
        *(
            f"| {k} | {sources[k]} | {several[k]} | {before[k]} | {after[k]} |"
            for k in sorted(sources)
        ),
        f"| **all** | {len(subjects)} | {sum(several.values())} | {sum(before.values())} | "
        f"{sum(after.values())} |",
        "",
    ]
    refused = [s for s in subjects if s.refused_before or s.refused_after]
    if not refused:
        lines.append("Refused photos: none under either rule.")
    for s in refused:
        before_word = "refused" if s.refused_before else "kept"
        after_word = "refused" if s.refused_after else "kept"
        name = s.face.photo.path.relative_to(root)
        lines.append(f"- `{name}` ({s.detections} faces): before {before_word}, after {after_word}")
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--manifest", type=Path, help="CSV path,identity[,source,kind,notes]")
    source.add_argument("--folder", type=Path, help="folder of person/*.jpg")
    parser.add_argument("--shared-models", type=Path, default=SHARED_MODELS)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-calibration", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args(argv)

    if args.folder:
        photos, root, set_name = read_folder(args.folder), args.folder, args.folder.name
        sets: dict[Path, str] = {}
    else:
        manifest = args.manifest or DEFAULT_MANIFEST
        if not manifest.is_file():
            parser.error(f"no manifest at {manifest}: pass --manifest or --folder")
        photos, root, set_name = read_manifest(manifest), manifest.parent, manifest.parent.name
        sets = unlabelled_photos(manifest)

    with tempfile.TemporaryDirectory() as model_dir:
        link_packs(args.shared_models, Path(model_dir))
        models = build_models(Settings(models=ModelSettings(model_dir=Path(model_dir))))
        detector = models["retinaface"]
        assert isinstance(detector, FaceDetector)
        detector.load(RuntimeOptions())
        subjects, missing = analyse(photos + [Photo(path, "") for path in sets], detector)
        faces = collapse_duplicates([s.face for s in subjects if s.face.photo.identity])
        labels = [f.photo.identity for f in faces]
        embedders = [
            (name, model)
            for name, model in models.items()
            if model.info.task is ModelTask.EMBEDDING
            and model.is_installed()
            and isinstance(model, FaceEmbedder)
        ]
        skipped = [
            name
            for name, m in models.items()
            if m.info.task is ModelTask.EMBEDDING and not m.is_installed()
        ]
        header = (
            f"Data: `{set_name}`: {len(photos)} labelled real photos, {len(faces)} after "
            f"collapsing duplicates, {len(set(labels))} identities; {len(sets)} unlabelled real "
            f"photos (enrollment refusals only); no face in {len(missing)}. "
            f"Subject face: `selection.rank_faces(...)[0]` of RetinaFace's detections (image ≤ "
            f"{LimitSettings().detect_max_side} px). {args.rounds} rounds (seed {args.seed}). "
            f"Embedders installed: {', '.join(n for n, _ in embedders)}; not installed: "
            f"{', '.join(skipped) or 'none'}. Load average {os.getloadavg()[0]:.1f} on "
            f"{os.cpu_count()} cores at the start."
        )
        print(header)
        sections = [header, "", *refusal_section(subjects, root, sets), NOTES, ""]
        print("\n".join(sections[2:]))
        stored = load_calibrations()
        fitted: dict[str, Calibration] = {}
        summary, calibrated, suggestions = [], [], []
        pairs = make_pairs(faces, "full", args.seed)
        for name, embedder in embedders:
            embedder.load(RuntimeOptions())
            embed_all(embedder, faces[:2])  # warm-up
            vectors, latencies = embed_all(embedder, faces)
            matrix = distance_matrix(embedder, vectors)
            same = np.array([matrix[i, j] for i, j in pairs[0]])
            different = np.array([matrix[i, j] for i, j in pairs[1]])
            result = Result(name, same, different, embedder.distance_threshold, latencies)
            stamp = time.strftime("%Y-%m-%d", time.gmtime())
            fitted[name] = fit_calibration(
                different,
                metric="cosine" if embedder.metric == "cosine" else "l2",
                identities=len(set(labels)),
                source=f"{set_name}: {len(set(labels))} identities, {len(faces)} photos after "
                f"collapsing duplicates, {different.size} impostor pairs; {stamp}; {command()}",
                space=embedder.space,
            )
            calibration = fitted[name] if args.write_calibration else stored.get(name)
            origin = "this run" if args.write_calibration else "packaged"
            if calibration is None:
                calibration, origin = fitted[name], "this run; none packaged"
            ident = identify(matrix, labels, args.rounds, args.seed)
            fmr, fnmr = rates(result, result.threshold)
            cells = []
            for fpir in FPIR_TARGETS:
                t = ident.empirical_threshold(fpir)
                cells.append(f"{ident.fnir(t):.1%} (t={t:.3f})")
            summary.append(
                f"| {name} | {float(np.mean(ident.correct)):.1%} | {' | '.join(cells)} | "
                f"{accuracy(result, result.threshold)[1]:.2%} | {fmr:.3%} | {fnmr:.2%} | "
                f"{result.threshold:g} | {percentile(latencies, 50):.1f} |"
            )
            ceiling = embedder.distance_threshold
            for fpir in FPIR_TARGETS:
                row = [calibrated_cell(ident, calibration, ceiling, fpir, n) for n in GALLERY_SIZES]
                calibrated.append(f"| {name} | {origin} | {fpir:.1%} | {' | '.join(row)} |")
            eer_t, eer = equal_error(result)
            at = fitted[name].distance_at_fmr(SUGGESTED_FMR)
            flag = " (extrap.)" if fitted[name].is_extrapolated(SUGGESTED_FMR) else ""
            median_same = float(np.median(same))
            # The scale that maps the median same-person distance to similarity 0.9.
            scale = (result.threshold - median_same) / math.log(9.0)
            suggestions.append(
                f"| {name} | {embedder.metric} | {result.threshold:g} | {at:.3f}{flag} | "
                f"{eer_t:.3f} (EER {eer:.2%}) | {median_same:.3f} | {scale:.3f} "
                f"(now {embedder.similarity_scale:g}) | "
                f"{ident.stranger_best.size} / {ident.correct.size} |"
            )
    tables = [
        "### Identification and verification",
        "",
        "Rank-1 and FNIR over genuine probes pooled over the rounds; empirical FNIR at the "
        "threshold naming at most 1% / 0.1% of this set's strangers (optimistic). Verification: "
        "every pair at the model's 1:1 threshold (balanced accuracy). ms: align + embed, one "
        "face, p50.",
        "",
        "| embedder | rank-1 | FNIR @ FPIR 1% (empirical) | FNIR @ FPIR 0.1% (empirical) | "
        "verification acc. | FMR | FNMR | 1:1 threshold | ms / face |",
        "|---|---|---|---|---|---|---|---|---|",
        *summary,
        "",
        "### FNIR at calibrated thresholds (gallery of n faces)",
        "",
        "FNIR on faces-dev's genuine probes at `threshold_for_fpir(calibration, FPIR, n)`, "
        "capped at the 1:1 threshold. extrap. = extrapolated with the calibration's tail model "
        "(per-comparison FMR below one impostor pair measured).",
        "",
        "| embedder | calibration | FPIR | n = 1k | n = 10k | n = 100k |",
        "|---|---|---|---|---|---|",
        *calibrated,
        "",
        "### 1:1 threshold suggestions (from measurement; the catalogue is not changed)",
        "",
        "| embedder | metric | current | distance at FMR 1e-3 (calibration) | equal-error point "
        "on this set | median same-person distance | similarity scale putting it at 0.9 | "
        "strangers / genuine probes |",
        "|---|---|---|---|---|---|---|---|",
        *suggestions,
        "",
    ]
    print("\n".join(tables))
    sections += tables
    if args.write_calibration:
        dump_calibrations({**stored, **fitted}, CALIBRATIONS_FILE)
        print(f"wrote {len(fitted)} calibrations to {CALIBRATIONS_FILE}")
    if not args.no_write:
        write_section("identification", "Open-set identification (1:N)", "\n".join(sections))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
