"""OpenCV Zoo YuNet (``face_detection_yunet_2023mar.onnx``): boxes, 5 landmarks, scores.

Input: BGR pixels as they are (no normalisation), letterboxed into the graph's fixed 640 × 640.
Outputs, checked with onnxruntime: for each stride 8/16/32 ``cls_S`` and ``obj_S`` (N, 1), already
sigmoid-activated, ``bbox_S`` (N, 4) and ``kps_S`` (N, 10), one prediction per cell, N = rows ·
cols. As OpenCV's ``FaceDetectorYN`` decodes them: score = √(cls · obj); the box centre is
``(col + dx, row + dy) · stride`` and its size ``exp(dw, dh) · stride``; landmark k is
``(col + kx, row + ky) · stride``. YuNet names its landmarks from the subject's side (right eye
first), which is the left eye as seen in the image: the order RetinaFace uses.
"""

from __future__ import annotations

import numpy as np

from facerec.errors import ModelLoadError
from facerec.inference.detectors.decoding import (
    STRIDES,
    Array,
    Letterboxed,
    centre_size_boxes,
    feature_sizes,
    grid_centres,
    offset_points,
    to_tensor,
    top_candidates,
)
from facerec.inference.detectors.onnx_pack import Candidates, OnnxPackDetector, Outputs
from facerec.inference.types import ImageBGR


class YuNetDetector(OnnxPackDetector):
    def prepare(self, image: ImageBGR) -> tuple[Array, Letterboxed]:
        placed = self.fit(image)
        return to_tensor(placed.canvas, rgb=False), placed

    def decode(self, outputs: Outputs, height: int, width: int, threshold: float) -> Candidates:
        parts: list[tuple[Array, Array, Array, Array, Array]] = []
        for stride, (rows, cols) in zip(STRIDES, feature_sizes(height, width), strict=True):
            try:
                cls, obj, box, kps = (
                    outputs[f"{kind}_{stride}"].reshape(rows * cols, -1)
                    for kind in ("cls", "obj", "bbox", "kps")
                )
            except (KeyError, ValueError) as exc:
                raise ModelLoadError(f"model {self.name!r}: not YuNet's outputs ({exc})") from exc
            score = np.sqrt(np.clip(cls[:, 0], 0, 1) * np.clip(obj[:, 0], 0, 1))
            centres = grid_centres(rows, cols, stride)
            parts.append((score, centres, np.full((rows * cols, 1), stride, np.float32), box, kps))
        scores, centres, strides, boxes, kps = (np.concatenate(p) for p in zip(*parts, strict=True))
        keep = top_candidates(scores, threshold)
        if keep.size == 0:
            return Candidates.empty()
        centre, stride_of, box = centres[keep], strides[keep], boxes[keep]
        box_centre = centre + box[:, :2] * stride_of
        box_size = np.exp(np.clip(box[:, 2:4], -20, 20)) * stride_of
        points = offset_points(centre, kps[keep], stride_of)
        return Candidates(centre_size_boxes(box_centre, box_size), scores[keep], points)
