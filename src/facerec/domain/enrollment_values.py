"""What enrollment takes and answers: the guard policy of a request, the warnings, each photo's
outcome and the result of add-face and register-multiple; and what an accepted photo stores.

Apart from :mod:`.enrollment` because more than the service uses these: bulk enrollment answers
per photo the same way, and the API's schemas and converters name them without the service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facerec.domain.chips import encode_chip
from facerec.domain.probes import Analysis
from facerec.errors import FaceRecError, FaceRejectedError
from facerec.storage.models import NewFace
from facerec.values import Person


class GuardPolicy(StrEnum):
    WARN = "warn"
    REJECT = "reject"


@dataclass(frozen=True)
class EnrollmentWarning:
    code: str  # inconsistent_with_person | possible_duplicate
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FaceEnrollment:
    person: Person
    face_id: str
    analysis: Analysis
    warnings: list[EnrollmentWarning]


@dataclass(frozen=True)
class ImageOutcome:
    index: int
    analysis: Analysis | None = None
    error: FaceRecError | None = None
    warnings: list[EnrollmentWarning] = field(default_factory=list)


@dataclass(frozen=True)
class Enrollment:
    person: Person
    face_ids: list[str]
    created: bool
    outcomes: list[ImageOutcome] = field(default_factory=list)
    embedder: str = ""
    warnings: list[EnrollmentWarning] = field(default_factory=list)


def no_usable_images(outcomes: list[ImageOutcome]) -> FaceRejectedError:
    """Not one photo of a person had a usable face: each photo's reason, nothing written."""
    return FaceRejectedError(
        "no image had a usable face; nothing was registered",
        code="no_usable_images",
        results=[
            {
                "index": o.index,
                "reason": o.error.code if o.error else "",
                "message": o.error.message if o.error else "",
            }
            for o in outcomes
        ],
    )


def new_face(space: str, analysis: Analysis, vector: NDArray[np.float32]) -> NewFace:
    probe = analysis.subject
    return NewFace(
        space=space,
        embedding=vector,
        quality=probe.quality.score,
        bbox=probe.detection.bbox,
        image_sha256=analysis.image_sha256,
        chip=encode_chip(probe.chip) if probe.chip is not None else None,
    )
