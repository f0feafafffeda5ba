"""The open-set identification rule: templates, the operating point, and the decision.

**Templates.** A person with several faces in the searched space is scored from all of them: the
fused distance is ``(min_i d_i + Σ q_i d_i / Σ q_i) / 2``: the nearest face, averaged with the
quality-weighted mean over the person's faces (``q_i``: enrollment quality). One good face still
counts, but a single outlier face (a mis-enrolment) can no longer carry a stranger over the
threshold alone. The fused distance is never below the nearest face's, so a stranger's chance of
clearing the threshold is at most that of the nearest-face rule.

**Operating point.** A stranger searched against a gallery meets ``n`` enrolled faces, so it has
``n`` chances to be named. With a per-comparison false-match rate ``FMR(t)`` at distance
threshold ``t`` (the embedder's calibration), the false-positive identification rate is
``FPIR(t) = 1 - (1 - FMR(t))^n``. For a requested ``target_fpir`` the rule solves
``FMR(t) = 1 - (1 - target_fpir)^(1/n)`` (≈ ``target_fpir / n``) and uses that ``t``, but never a
threshold looser than the model's 1:1 verification threshold. A fixed ``similarity_threshold``
overrides the target; the expected FPIR at it is still reported.

**Decision.** The best person is *known* when its fused distance clears the threshold, unless the
runner-up (another person) clears it too and trails by less than ``min_margin`` in similarity: two
people both matching almost equally is ambiguous and answered *unknown* (``decided_by: margin``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from facerec.inference.base import FaceEmbedder
from facerec.inference.calibration import expected_fpir, threshold_for_fpir

DEFAULT_TARGET_FPIR = 0.01
DEFAULT_MIN_MARGIN = 0.05


@dataclass(frozen=True)
class TemplateFace:
    distance: float
    quality: float  # 0-100


def fused_distance(faces: Sequence[TemplateFace]) -> float:
    """A person's template distance from its faces' distances (see the module docstring)."""
    if not faces:
        raise ValueError("a template needs at least one face")
    nearest = min(f.distance for f in faces)
    weights = [max(f.quality, 1.0) for f in faces]
    mean = sum(w * f.distance for w, f in zip(weights, faces, strict=True)) / sum(weights)
    return 0.5 * (nearest + mean)


@dataclass(frozen=True)
class OperatingPoint:
    """The threshold a decision used, and what it promises."""

    rule: Literal["target_fpir", "similarity_threshold"]
    target_fpir: float | None
    similarity_threshold: float
    distance_threshold: float
    gallery_size: int  # persons in the collection
    comparisons: int  # faces in the searched space: a stranger's chances to be named
    expected_fpir: float | None  # None: the model has no calibration
    fmr_at_threshold: float | None
    extrapolated: bool  # FMR below what the calibration data can show (tail model)
    capped_at_verification: bool  # the FPIR threshold was looser than the 1:1 one
    min_margin: float
    calibration: str | None  # where the model's calibration comes from


def operating_point(
    embedder: FaceEmbedder,
    *,
    gallery_size: int,
    comparisons: int,
    target_fpir: float | None,
    similarity_threshold: float | None,
    min_margin: float = DEFAULT_MIN_MARGIN,
) -> OperatingPoint:
    calibration = embedder.calibration
    n = max(comparisons, 1)
    capped = False
    if similarity_threshold is not None:
        rule: Literal["target_fpir", "similarity_threshold"] = "similarity_threshold"
        distance = embedder.distance_for_similarity(similarity_threshold)
        target = None
    else:
        rule = "target_fpir"
        target = DEFAULT_TARGET_FPIR if target_fpir is None else target_fpir
        distance = embedder.distance_threshold
        if calibration is not None:
            fitted = threshold_for_fpir(calibration, target, n)
            capped = fitted > distance
            distance = min(fitted, distance)
    fmr = expected = None
    extrapolated = False
    if calibration is not None:
        fmr = calibration.fmr(distance)
        expected = expected_fpir(calibration, distance, n)
        extrapolated = calibration.is_extrapolated(fmr)
    return OperatingPoint(
        rule=rule,
        target_fpir=target,
        similarity_threshold=embedder.similarity(distance),
        distance_threshold=distance,
        gallery_size=gallery_size,
        comparisons=comparisons,
        expected_fpir=expected,
        fmr_at_threshold=fmr,
        extrapolated=extrapolated,
        capped_at_verification=capped,
        min_margin=min_margin,
        calibration=calibration.source if calibration is not None else None,
    )


@dataclass(frozen=True)
class Candidate:
    """One person of a search, scored from its template."""

    person_id: str
    face_id: str | None  # the person's nearest face (None: inline galleries)
    distance: float  # fused template distance
    nearest_distance: float
    faces: int
    similarity: float


@dataclass(frozen=True)
class Decision:
    known: bool
    decided_by: Literal["threshold", "margin"]
    margin: float | None  # best similarity minus the runner-up's (None: no runner-up)


def rank(candidates: Iterable[Candidate]) -> list[Candidate]:
    return sorted(candidates, key=lambda c: (c.distance, c.person_id))


def decide(ranked: Sequence[Candidate], point: OperatingPoint) -> Decision:
    """The open-set decision over candidates sorted best first."""
    if not ranked:
        return Decision(known=False, decided_by="threshold", margin=None)
    best = ranked[0]
    margin = best.similarity - ranked[1].similarity if len(ranked) > 1 else None
    if best.distance > point.distance_threshold or math.isnan(best.distance):
        return Decision(known=False, decided_by="threshold", margin=margin)
    runner_up_clears = len(ranked) > 1 and ranked[1].distance <= point.distance_threshold
    if runner_up_clears and margin is not None and margin < point.min_margin:
        return Decision(known=False, decided_by="margin", margin=margin)
    return Decision(known=True, decided_by="threshold", margin=margin)
