"""A fake embedder for service tests: real interface, synthetic calibration, no weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facerec.inference.base import FaceEmbedder, RuntimeOptions
from facerec.inference.calibration import Calibration, fit_calibration
from facerec.inference.types import ImageBGR, ModelInfo, ModelTask
from facerec.values import Detection

DIM = 8


def synthetic_calibration(seed: int = 7) -> Calibration:
    """Impostor L2 distances ~ N(1.2, 0.12): FMR 1e-3 near 0.83, far below the 1:1 threshold."""
    rng = np.random.default_rng(seed)
    impostors = rng.normal(1.2, 0.12, 20_000)
    return fit_calibration(impostors, metric="l2", identities=200, source="synthetic N(1.2, 0.12)")


class FakeEmbedder(FaceEmbedder):
    metric = "l2"

    def __init__(self, calibration: Calibration | None = None, threshold: float = 0.9) -> None:
        info = ModelInfo(
            name="fake",
            task=ModelTask.EMBEDDING,
            family="fake",
            version="1",
            source="test",
            license="test",
        )
        super().__init__(info, session=object())
        self.dim = DIM
        self.distance_threshold = threshold
        self.similarity_scale = 0.1
        self.calibration = calibration

    def weights_bytes(self) -> int:
        return 0

    def _create_session(self, runtime: RuntimeOptions) -> Any:  # pragma: no cover
        return object()

    def embed(self, image: ImageBGR, faces: Sequence[Detection]) -> NDArray[np.float32]:
        return np.zeros((len(faces), DIM), np.float32)  # pragma: no cover - not used
