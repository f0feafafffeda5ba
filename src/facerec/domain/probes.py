"""What the analysis core takes and returns: options, liveness verdicts and face probes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

from facerec.inference.base import AlignedChip
from facerec.inference.images import DecodedImage
from facerec.inference.quality import QualityReport
from facerec.values import BBox, Detection


class ProcessingMode(StrEnum):
    """How much work to spend on one face (documented in the README).

    - ``fast``: no quality bar, single pass.
    - ``balanced`` (default): quality bar for enrollment, single pass.
    - ``accurate``: quality bar, and the embedding is the mean of the face and its mirror image.
    """

    FAST = "fast"
    BALANCED = "balanced"
    ACCURATE = "accurate"


class FaceChoice(StrEnum):
    """Which faces of a photo the analysis keeps.

    - ``all``: every detected face (detection, anti-spoofing, group photos);
    - ``subject``: the most prominent face; other people never make the photo fail
      (recognize, compare);
    - ``enroll``: the most prominent face, refused with ``multiple_faces`` when another face
      competes with it (see :mod:`facerec.domain.selection`).
    """

    ALL = "all"
    SUBJECT = "subject"
    ENROLL = "enroll"


@dataclass(frozen=True)
class AnalysisOptions:
    """One request's analysis. Model names are already resolved (``None``: no such step)."""

    detector: str
    embedder: str | None = None
    choice: FaceChoice = FaceChoice.SUBJECT
    mode: ProcessingMode = ProcessingMode.BALANCED
    conf_threshold: float = 0.5
    iou_threshold: float = 0.4
    max_faces: int = 50
    quality_bar: bool = False  # refuse a chosen face with quality reasons (enrollment)
    min_quality: float = 0.0  # refuse (subject/enroll) or leave out (all) faces below this
    liveness: str | None = None  # liveness model name; None: no liveness check
    liveness_threshold: float | None = None  # None: the configured threshold
    gate_liveness: bool = True  # subject/enroll: a spoof is refused (422), not only reported
    reduced_decode: bool = False  # only positions are needed: a large JPEG may decode reduced
    keep_chips: bool = False  # return each embedded face's aligned chip (enrollment keeps it)
    region: BBox | None = None  # detect only inside this box of the photo (see DetectOptions)


@dataclass(frozen=True)
class LivenessVerdict:
    is_live: bool
    live_score: float
    threshold: float
    model: str
    per_model: dict[str, float]
    # None, or why there is no trustworthy verdict ("insufficient_context": a tight face crop).
    reason: str | None = None


@dataclass(frozen=True)
class FaceProbe:
    """One analysed face: where it is, how good and how prominent, its embedding (when an
    embedder was asked for) and its liveness verdict (when asked for)."""

    detection: Detection
    quality: QualityReport
    index: int  # position among the detected faces
    prominence: float = 1.0
    embedding: NDArray[np.float32] | None = None
    liveness: LivenessVerdict | None = None
    # The embedder's aligned chip of the face (``AnalysisOptions.keep_chips``).
    chip: AlignedChip | None = None

    @property
    def vector(self) -> NDArray[np.float32]:
        """The embedding of a probe analysed with an embedder."""
        if self.embedding is None:  # pragma: no cover - callers ask for an embedder
            raise ValueError("this face was analysed without an embedder")
        return self.embedding


@dataclass(frozen=True)
class ImageMeta:
    """What a response says about the photo (the pixels are not kept)."""

    width: int
    height: int
    channels: int
    format: str

    @classmethod
    def of(cls, image: DecodedImage) -> ImageMeta:
        return cls(image.width, image.height, image.channels, image.format)


@dataclass(frozen=True)
class Analysis:
    """Everything one photo gave: its faces as probes and how they were produced."""

    probes: list[FaceProbe]
    image: ImageMeta
    image_sha256: str
    detector: str
    embedder: str | None
    space: str | None
    faces_in_image: int  # faces detected, whatever was kept
    filtered_low_quality: int = 0  # ``all``: faces left out for min_quality

    @property
    def subject(self) -> FaceProbe:
        """The one face of a ``subject``/``enroll`` analysis."""
        return self.probes[0]


def image_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
