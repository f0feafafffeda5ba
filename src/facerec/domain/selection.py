"""Which face of a photo is its subject, and when an enrollment photo is genuinely ambiguous.

Prominence (0-1) of each face, the product of four factors, each a plain image measure:

- size: the face's side relative to the largest face's side (``sqrt`` of the area ratio), so a
  face half as tall scores 0.5, not 0.25;
- centrality: 1 at the image centre, falling linearly to 0.5 at a corner; a box touching the
  image border (a bystander cut off at the edge) is further multiplied by ``EDGE_PENALTY``;
- confidence: the detector's score, with scores below ``CONFIDENT_SCORE`` halved again (a
  patterned shirt can score 0.54 and be larger than the real face);
- quality: ``0.5 + 0.5 * quality / 100`` (a blurred or profile face behind the subject loses).

recognize and compare take the most prominent face and never refuse a photo because other people
are in it. Enrollment refuses only when another face *competes*: it is confident, has no quality
reason of its own, is at least ``COMPETING_SIZE`` of the subject's side, and its prominence is at
least ``COMPETING_PROMINENCE`` of the subject's. Someone small, blurred, turned away or cut off
behind the subject does not compete.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from facerec.inference.quality import QualityBar, QualityReport, assess
from facerec.inference.types import ImageBGR
from facerec.values import BBox, Detection

CONFIDENT_SCORE = 0.9
EDGE_PENALTY = 0.7
EDGE_MARGIN_PX = 1.0
COMPETING_SIZE = 0.75
COMPETING_PROMINENCE = 0.75


@dataclass(frozen=True)
class RankedFace:
    """A detected face with its quality and how prominent it is in the photo."""

    detection: Detection
    quality: QualityReport
    prominence: float
    size: float
    centrality: float
    index: int  # position in the detector's output


def _centrality(box: BBox, width: int, height: int) -> float:
    cx, cy = (box.x1 + box.x2) / 2.0, (box.y1 + box.y2) / 2.0
    half_diag = math.hypot(width / 2.0, height / 2.0) or 1.0
    off = math.hypot(cx - width / 2.0, cy - height / 2.0) / half_diag
    value = 1.0 - 0.5 * min(1.0, off)
    touches = (
        box.x1 <= EDGE_MARGIN_PX
        or box.y1 <= EDGE_MARGIN_PX
        or box.x2 >= width - EDGE_MARGIN_PX
        or box.y2 >= height - EDGE_MARGIN_PX
    )
    # A face filling most of the frame touches the border too: that is a close-up, not a
    # bystander, so only faces smaller than half the frame are penalised.
    small = box.width < 0.5 * width and box.height < 0.5 * height
    return value * (EDGE_PENALTY if touches and small else 1.0)


def rank_faces(
    faces: Sequence[Detection], reports: Sequence[QualityReport], width: int, height: int
) -> list[RankedFace]:
    """Faces with their prominence, most prominent first (ties: detector order)."""
    if not faces:
        return []
    largest = max(f.bbox.area for f in faces) or 1.0
    ranked = []
    for index, (face, report) in enumerate(zip(faces, reports, strict=True)):
        size = math.sqrt(max(face.bbox.area, 0.0) / largest)
        centrality = _centrality(face.bbox, width, height)
        confidence = face.score if face.score >= CONFIDENT_SCORE else face.score * 0.5
        quality = 0.5 + 0.5 * max(0.0, min(100.0, report.score)) / 100.0
        ranked.append(
            RankedFace(
                detection=face,
                quality=report,
                prominence=size * centrality * confidence * quality,
                size=size,
                centrality=centrality,
                index=index,
            )
        )
    ranked.sort(key=lambda r: (-r.prominence, r.index))
    return ranked


def competing_faces(ranked: Sequence[RankedFace]) -> list[RankedFace]:
    """Faces that make an enrollment photo ambiguous (empty: the subject is clear)."""
    if len(ranked) < 2:
        return []
    subject = ranked[0]
    subject_side = math.sqrt(subject.detection.bbox.area) or 1.0
    competing = []
    for other in ranked[1:]:
        side = math.sqrt(other.detection.bbox.area)
        if (
            other.detection.score >= CONFIDENT_SCORE
            and not other.quality.reasons
            and side >= COMPETING_SIZE * subject_side
            and other.prominence >= COMPETING_PROMINENCE * subject.prominence
        ):
            competing.append(other)
    return competing


def subject_of(
    image: ImageBGR, faces: Sequence[Detection], bar: QualityBar | None = None
) -> RankedFace | None:
    """The subject of an image's detected faces (quality assessed here), or None without faces.
    For benchmarks and tools that hold decoded pixels; the service ranks inside the analysis."""
    reports = [assess(image, face, bar or QualityBar()) for face in faces]
    ranked = rank_faces(faces, reports, image.shape[1], image.shape[0])
    return ranked[0] if ranked else None
