"""InsightFace SCRFD (``scrfd_500m``, ``scrfd_2.5g``): boxes, 5 keypoints, scores.

Input: RGB, ``(x − 127.5) / 128``, the image letterboxed into 640 × 640 (``scrfd_500m``
fixes that size; ``scrfd_2.5g`` takes any, but at the image's own size it misses faces larger
than ~500 px: 5 of faces-dev's photos, bench/bench_detectors.py). A photo smaller than the input
is padded, not enlarged. Outputs: for each stride 8/16/32 a score
(N, 1), box distances (N, 4) and keypoint offsets (N, 10), N = rows · cols · 2 anchors; the
anchors of a cell sit at its top-left corner ``(col · stride, row · stride)`` and distances and
offsets are in strides. The output names differ between exports (``score_8`` or ``446``), so the
outputs are told apart by their width (1, 4, 10) and their stride by their length.
"""

from __future__ import annotations

import numpy as np

from facerec.errors import ModelLoadError
from facerec.inference.detectors.decoding import (
    STRIDES,
    Array,
    Letterboxed,
    distance_boxes,
    feature_sizes,
    grid_centres,
    offset_points,
    to_tensor,
    top_candidates,
)
from facerec.inference.detectors.onnx_pack import Candidates, OnnxPackDetector, Outputs
from facerec.inference.types import ImageBGR

MEAN = 127.5
SCALE = 1.0 / 128.0


class ScrfdDetector(OnnxPackDetector):
    def prepare(self, image: ImageBGR) -> tuple[Array, Letterboxed]:
        placed = self.fit(image)
        return to_tensor(placed.canvas, rgb=True, mean=MEAN, scale=SCALE), placed

    def decode(self, outputs: Outputs, height: int, width: int, threshold: float) -> Candidates:
        heads = split_heads(outputs, self.name)
        centres, strides, scores, distances, offsets = [], [], [], [], []
        for stride, (rows, cols), (score, box, kps) in zip(
            STRIDES, feature_sizes(height, width), heads, strict=True
        ):
            cells = rows * cols
            if len(score) % cells:
                raise ModelLoadError(f"model {self.name!r}: {len(score)} rows at stride {stride}")
            centres.append(grid_centres(rows, cols, stride, per_cell=len(score) // cells))
            strides.append(np.full((len(score), 1), stride, np.float32))
            scores.append(score[:, 0])
            distances.append(box)
            offsets.append(kps)
        all_scores = np.concatenate(scores)
        keep = top_candidates(all_scores, threshold)
        if keep.size == 0:
            return Candidates.empty()
        centre = np.concatenate(centres)[keep]
        stride_of = np.concatenate(strides)[keep]
        boxes = distance_boxes(centre, np.concatenate(distances)[keep] * stride_of)
        points = offset_points(centre, np.concatenate(offsets)[keep], stride_of)
        return Candidates(boxes, all_scores[keep], points)


def split_heads(outputs: Outputs, name: str) -> list[tuple[Array, Array, Array]]:
    """(score, box, keypoints) per stride, largest feature map (stride 8) first."""
    by_width: dict[int, list[Array]] = {1: [], 4: [], 10: []}
    for value in outputs.values():
        flat = value.reshape(-1, value.shape[-1])
        if flat.shape[1] not in by_width:
            raise ModelLoadError(f"model {name!r} has an output of shape {value.shape}")
        by_width[flat.shape[1]].append(flat)
    if any(len(group) != len(STRIDES) for group in by_width.values()):
        raise ModelLoadError(f"model {name!r} does not have SCRFD's 9 outputs with keypoints")
    ordered = [sorted(group, key=len, reverse=True) for group in by_width.values()]
    return list(zip(*ordered, strict=True))
