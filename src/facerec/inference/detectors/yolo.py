"""YOLO-family face detectors with 5 landmarks: YOLOv8-face and YOLOv5-face.

Both take RGB ``/255`` letterboxed into their fixed 640 × 640 input (padded with grey 114, as
their training did).

**YOLOv8-face** (``yolov8-lite-t``): three heads [1, 80, H, W] (stride = 640 / H), per cell 64
channels of box distribution (4 sides × 16 bins: the distance to a side, in cells, is the
expectation of its softmax), 1 score logit and 5 keypoints × (x, y, visibility). The cell centre
is ``(col + 0.5, row + 0.5) · stride``; keypoint k is ``(2·x + col, 2·y + row) · stride``.

**YOLOv5-face** (``yolov5n-0.5``): raw heads ``stride_8/16/32`` [1, 3, H, W, 16], 3 anchors per
cell; per prediction box (4), objectness (1), 5 landmarks (10), class (1). Sigmoid on the box,
objectness and class; centre ``(2σ − 0.5 + cell) · stride``, size ``(2σ)² · anchor``,
landmark ``raw · anchor + cell · stride``; score = objectness · class.
"""

from __future__ import annotations

import numpy as np

from facerec.errors import ModelLoadError
from facerec.inference.detectors.decoding import (
    STRIDES,
    Array,
    Letterboxed,
    centre_size_boxes,
    dfl_expectation,
    distance_boxes,
    feature_sizes,
    grid_centres,
    offset_points,
    sigmoid,
    to_tensor,
    top_candidates,
)
from facerec.inference.detectors.onnx_pack import Candidates, OnnxPackDetector, Outputs
from facerec.inference.types import ImageBGR

PAD = 114
DFL_BINS = 16
YOLOV8_CHANNELS = 4 * DFL_BINS + 1 + 15
# (width, height) of the three anchors of each stride, in input pixels
YOLOV5_ANCHORS: dict[int, tuple[tuple[int, int], ...]] = {
    8: ((4, 5), (8, 10), (13, 16)),
    16: ((23, 29), (43, 55), (73, 105)),
    32: ((146, 217), (231, 300), (335, 433)),
}


class YoloDetector(OnnxPackDetector):
    def prepare(self, image: ImageBGR) -> tuple[Array, Letterboxed]:
        placed = self.fit(image, pad=PAD)
        return to_tensor(placed.canvas, rgb=True, scale=1.0 / 255.0), placed


class YoloV8FaceDetector(YoloDetector):
    def decode(self, outputs: Outputs, height: int, width: int, threshold: float) -> Candidates:
        heads = sorted(outputs.values(), key=lambda v: -v.shape[-1])
        if len(heads) != len(STRIDES) or any(
            h.ndim != 4 or h.shape[1] != YOLOV8_CHANNELS for h in heads
        ):
            shapes = [v.shape for v in outputs.values()]
            raise ModelLoadError(f"model {self.name!r}: not YOLOv8-face heads ({shapes})")
        rows_of: list[Array] = []
        centres, cells, strides = [], [], []
        for head, stride, (rows, cols) in zip(
            heads, STRIDES, feature_sizes(height, width), strict=True
        ):
            if head.shape[2:] != (rows, cols):
                raise ModelLoadError(f"model {self.name!r}: head {head.shape} at stride {stride}")
            rows_of.append(head[0].reshape(YOLOV8_CHANNELS, -1).T)
            centres.append(grid_centres(rows, cols, stride, offset=0.5))
            cells.append(grid_centres(rows, cols, stride))
            strides.append(np.full((rows * cols, 1), stride, np.float32))
        predictions = np.concatenate(rows_of)
        scores = sigmoid(predictions[:, 4 * DFL_BINS])
        keep = top_candidates(scores, threshold)
        if keep.size == 0:
            return Candidates.empty()
        chosen, stride_of = predictions[keep], np.concatenate(strides)[keep]
        distances = dfl_expectation(chosen[:, : 4 * DFL_BINS], DFL_BINS) * stride_of
        boxes = distance_boxes(np.concatenate(centres)[keep], distances)
        keypoints = chosen[:, 4 * DFL_BINS + 1 :].reshape(-1, 5, 3)[:, :, :2].reshape(-1, 10)
        points = offset_points(np.concatenate(cells)[keep], keypoints, 2 * stride_of)
        return Candidates(boxes, scores[keep], points)


class YoloV5FaceDetector(YoloDetector):
    def decode(self, outputs: Outputs, height: int, width: int, threshold: float) -> Candidates:
        parts: list[tuple[Array, Array, Array]] = []
        for stride, (rows, cols) in zip(STRIDES, feature_sizes(height, width), strict=True):
            head = outputs.get(f"stride_{stride}")
            anchors = YOLOV5_ANCHORS[stride]
            if head is None or head.shape[1:] != (len(anchors), rows, cols, 16):
                got = None if head is None else head.shape
                raise ModelLoadError(f"model {self.name!r}: stride_{stride} is {got}")
            # anchor-major: every cell of the first anchor, then of the second, ...
            cells = np.tile(grid_centres(rows, cols, stride), (len(anchors), 1))
            sizes = np.repeat(np.asarray(anchors, np.float32), rows * cols, axis=0)
            parts.append((head.reshape(-1, 16), cells, sizes))
        raw, cells, sizes = (np.concatenate(p) for p in zip(*parts, strict=True))
        strides = np.concatenate(
            [np.full((len(p[0]), 1), s, np.float32) for p, s in zip(parts, STRIDES, strict=True)]
        )
        scores = sigmoid(raw[:, 4]) * sigmoid(raw[:, 15])
        keep = top_candidates(scores, threshold)
        if keep.size == 0:
            return Candidates.empty()
        chosen, cell, size, stride_of = raw[keep], cells[keep], sizes[keep], strides[keep]
        box = sigmoid(chosen[:, :4])
        centre = cell + (box[:, :2] * 2 - 0.5) * stride_of
        boxes = centre_size_boxes(centre, (box[:, 2:4] * 2) ** 2 * size)
        points = offset_points(cell, chosen[:, 5:15], size)
        return Candidates(boxes, scores[keep], points)
