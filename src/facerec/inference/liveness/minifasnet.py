"""Passive anti-spoofing with the two published MiniFASNet networks, on onnxruntime.

For each face, each network gets its own crop: the detector's box enlarged by the network's
scale (x2.7 for V2, x4.0 for V1SE) around its centre, shifted to stay inside the image and
shrunk when it cannot fit (upstream ``CropImage._get_new_box``), resized to 80x80. Pixels go in
as raw BGR 0..255 floats: upstream's ``ToTensor`` does not divide by 255 (checked against the
reference ONNX export and the spoof samples, BENCHMARKS.md). The live score is the mean over
the two networks of softmax class 1; all faces of an image go through each network in one run.

The networks look at the surroundings of the face as much as at the face: on a tight face crop
(:func:`context_ratio` below :data:`MIN_CONTEXT_RATIO`) real faces score as spoofs, so callers
should not trust, nor reject on, a score for such an image.

The weights are a model pack (``facerec models pull minifasnet``): without the converted ONNX
files the model reports itself not installed and refuses to score, it never guesses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from facerec.errors import ModelNotAvailableError
from facerec.inference.base import LivenessModel, LivenessScore, RuntimeOptions, onnx_session
from facerec.inference.catalogue import MINIFASNET, ModelEntry
from facerec.inference.types import ImageBGR, ModelInfo
from facerec.values import BBox, Detection

INPUT_NAME = "input"
LIVE_CLASS = 1
# Live score at or above which a face is accepted as live, from bench/bench_liveness.py
# (BENCHMARKS.md "Liveness"): on ../shared/faces-dev every spoof scores ≤ 0.33 and every real
# photo with room around the face ≥ 0.50; 0.4 is the middle of that gap, so neither side sits on
# the threshold (0.5, "live more likely than not", would leave a real photo at 0.501 one
# re-encode away from rejection). Seven spoofs cannot promise an APCER: raise it for a stricter
# gate, at the cost of more real faces refused.
DEFAULT_THRESHOLD = 0.4
# The networks judge the face together with its surroundings (x2.7 and x4.0 the box). When the
# image is a tight face crop the box cannot be enlarged and real faces score as spoofs (tight
# 96-150 px chips: most under 0.5). Below this ratio the score should not be trusted.
MIN_CONTEXT_RATIO = 1.5


def _box_size(bbox: BBox) -> tuple[int, int]:
    """Upstream's integer box size (its detector gave ``w = right - left + 1``)."""
    return max(1, int(bbox.x2 - bbox.x1 + 1)), max(1, int(bbox.y2 - bbox.y1 + 1))


def context_ratio(bbox: BBox, width: int, height: int) -> float:
    """How many times the face box fits in the image: the most it can be enlarged.

    Below :data:`MIN_CONTEXT_RATIO` (a tight face crop, not a photo) the score is unreliable.
    """
    box_w, box_h = _box_size(bbox)
    return min((height - 1) / box_h, (width - 1) / box_w)


def expand_box(bbox: BBox, scale: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Pixel bounds (left, top, right, bottom), inclusive, of the crop for one network.

    Upstream's geometry: the box (as ``x, y, w, h`` with ``w = x2 - x1 + 1``) is scaled about its
    centre, the scale capped so the crop fits in the image, then shifted back inside.
    """
    x, y = int(bbox.x1), int(bbox.y1)
    box_w, box_h = _box_size(bbox)
    scale = min(context_ratio(bbox, width, height), scale)
    new_w, new_h = box_w * scale, box_h * scale
    centre_x, centre_y = x + box_w / 2, y + box_h / 2
    left, right = centre_x - new_w / 2, centre_x + new_w / 2
    top, bottom = centre_y - new_h / 2, centre_y + new_h / 2
    if left < 0:
        right -= left
        left = 0
    if top < 0:
        bottom -= top
        top = 0
    if right > width - 1:
        left -= right - width + 1
        right = width - 1
    if bottom > height - 1:
        top -= bottom - height + 1
        bottom = height - 1
    return int(left), int(top), int(right), int(bottom)


def crop_face(image: ImageBGR, bbox: BBox, scale: float, size: int) -> NDArray[np.uint8]:
    """The ``size`` x ``size`` BGR crop one network sees for ``bbox``."""
    height, width = image.shape[:2]
    left, top, right, bottom = expand_box(bbox, scale, width, height)
    patch = image[top : bottom + 1, left : right + 1]
    if patch.size == 0:  # a 1-pixel-wide image leaves nothing to crop: use it whole
        patch = image
    resized = cv2.resize(patch, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.asarray(resized, dtype=np.uint8)


def batch_crops(
    image: ImageBGR, faces: Sequence[Detection], scale: float, size: int
) -> NDArray[np.float32]:
    """(N, 3, size, size) float32 network input for ``faces``: raw BGR values, no scaling."""
    crops = np.stack([crop_face(image, face.bbox, scale, size) for face in faces])
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)


def softmax(logits: NDArray[np.float32]) -> NDArray[np.float32]:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True), dtype=np.float32)


def _info(pack: ModelEntry, threshold: float) -> ModelInfo:
    return pack.model_info(
        extra={
            "default_threshold": threshold,
            "networks": [
                {"variant": f.variant, "scale": f.scale, "input_size": f.input_size}
                for f in pack.converted_files
            ],
        },
    )


class MiniFASNetLiveness(LivenessModel):
    """``model_dir`` holds the converted files (``<models.model_dir>/minifasnet``).

    ``session`` (tests) maps each variant name (``MiniFASNetV2``, ``MiniFASNetV1SE``) to an
    object with onnxruntime's ``run(output_names, feeds)``.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        session: Mapping[str, Any] | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        pack: ModelEntry = MINIFASNET,
    ) -> None:
        if session is not None:
            missing = {f.variant for f in pack.converted_files} - set(session)
            if missing:
                raise ValueError(f"sessions missing for {sorted(missing)}")
        super().__init__(_info(pack, threshold), session=session)
        self.model_dir = Path(model_dir)
        self.pack = pack
        self.threshold = threshold

    def _paths(self) -> list[Path]:
        return [self.model_dir / f.onnx_name for f in self.pack.converted_files]

    def is_installed(self) -> bool:
        return self._injected or all(path.is_file() for path in self._paths())

    def not_installed_reason(self) -> str:
        if self.is_installed():
            return ""
        missing = ", ".join(path.name for path in self._paths() if not path.is_file())
        return (
            f"missing {missing} in {self.model_dir}: run `facerec models pull minifasnet` "
            f"(needs internet and pip install 'facerec[convert]'), or `facerec models convert "
            f"minifasnet --src DIR_WITH_PTH --dest {self.model_dir}`"
        )

    def weights_bytes(self) -> int:
        return sum(path.stat().st_size for path in self._paths() if path.is_file())

    def _create_session(self, runtime: RuntimeOptions) -> dict[str, Any]:
        if not self.is_installed():
            raise ModelNotAvailableError(
                f"model {self.name!r} is not installed: {self.not_installed_reason()}",
                code="model_not_installed",
                model=self.name,
            )
        return {
            spec.variant: onnx_session(self.model_dir / spec.onnx_name, runtime)
            for spec in self.pack.converted_files
        }

    def score(self, image: ImageBGR, faces: Sequence[Detection]) -> list[LivenessScore]:
        if not faces:
            return []
        return self.score_crops(self.crops(image, faces))

    def crops(self, image: ImageBGR, faces: Sequence[Detection]) -> list[NDArray[np.float32]]:
        """One batch of face crops per network of the pack, in ``pack.converted_files`` order."""
        return [
            batch_crops(image, faces, spec.scale, spec.input_size)
            for spec in self.pack.converted_files
        ]

    def score_crops(self, per_network: Sequence[NDArray[np.float32]]) -> list[LivenessScore]:
        """Scores of the faces whose crops :meth:`crops` made (from one image or, batched, from
        several): each network runs once over its batch, the live probabilities are averaged."""
        sessions: Mapping[str, Any] = self.session
        per_model: dict[str, NDArray[np.float32]] = {}
        for spec, batch in zip(self.pack.converted_files, per_network, strict=True):
            logits = np.asarray(sessions[spec.variant].run(None, {INPUT_NAME: batch})[0])
            per_model[spec.variant] = softmax(logits.astype(np.float32))[:, LIVE_CLASS]
        live = np.mean(np.stack(list(per_model.values())), axis=0)
        return [
            LivenessScore(
                live_score=float(live[i]),
                per_model={name: float(scores[i]) for name, scores in per_model.items()},
            )
            for i in range(len(live))
        ]

    def is_live(self, score: LivenessScore, threshold: float | None = None) -> bool:
        return score.live_score >= (self.threshold if threshold is None else threshold)
