"""Pre- and post-processing every anchor/grid face detector shares.

The families differ in what a network output means, not in the arithmetic around it: each places
one prediction per grid cell (or per anchor of a cell) of the stride-8/16/32 feature maps, turns
offsets from the cell into a box and five landmarks, and hands the candidates to NMS. These
helpers are that arithmetic, written once:

- :func:`grid_centres`: the cell (or anchor) positions in network-input pixels, in the order the
  networks emit them (row-major, the anchors of one cell together);
- :func:`distance_boxes` (SCRFD, YOLOv8: distances from the centre to each side),
  :func:`centre_size_boxes` (RetinaFace, YuNet, YOLOv5: centre and size) and
  :func:`offset_points` (landmarks as scaled offsets from the centre);
- :func:`dfl_expectation` (YOLOv8's distribution over 16 distance bins), :func:`sigmoid`;
- :func:`resize_for_detector` (a photo to the size a detector sees) and :func:`letterbox` (fit an
  image into a fixed network input without distorting it);
- :func:`to_detections`: threshold-filtered candidates → NMS → boxes and landmarks mapped back to
  the image and clipped, best first.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from numpy.typing import NDArray

from facerec.inference.detectors.nms import nms
from facerec.inference.scratch import scratch
from facerec.inference.types import ImageBGR
from facerec.values import BBox, Detection

Array = NDArray[np.float32]
STRIDES = (8, 16, 32)
# Candidates kept before NMS: far more than any photo has faces, bounded for speed.
PRE_NMS_TOP = 5000


@lru_cache(maxsize=64)
def _grid(rows: int, cols: int, stride: int, offset: float, per_cell: int) -> Array:
    ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    centres = np.stack([(xs.ravel() + offset) * stride, (ys.ravel() + offset) * stride], axis=1)
    centres = np.repeat(centres, per_cell, axis=0).astype(np.float32)
    centres.setflags(write=False)
    return centres


def grid_centres(
    rows: int, cols: int, stride: int, *, offset: float = 0.0, per_cell: int = 1
) -> Array:
    """(rows·cols·per_cell, 2) cell positions ``((col + offset)·stride, (row + offset)·stride)``,
    row-major, each repeated ``per_cell`` times (the anchors of a cell are adjacent)."""
    return _grid(rows, cols, stride, offset, per_cell)


def feature_sizes(
    height: int, width: int, strides: tuple[int, ...] = STRIDES
) -> list[tuple[int, int]]:
    """(rows, cols) of each stride's feature map for an input of ``height`` × ``width``."""
    return [(-(-height // s), -(-width // s)) for s in strides]


def distance_boxes(centres: Array, distances: Array) -> Array:
    """x1y1x2y2 boxes from distances (left, top, right, bottom) to the sides of the box."""
    return np.hstack([centres - distances[:, :2], centres + distances[:, 2:4]]).astype(np.float32)


def centre_size_boxes(centres: Array, sizes: Array) -> Array:
    """x1y1x2y2 boxes from their centres (N, 2) and sizes (N, 2) (or (N, 1): square)."""
    half = np.broadcast_to(sizes, centres.shape) / 2
    return np.hstack([centres - half, centres + half]).astype(np.float32)


def offset_points(centres: Array, offsets: Array, scale: Array | float) -> Array:
    """(N, 5, 2) points ``centre + offset·scale``; ``scale`` is a number, (N, 1) or (N, 2)."""
    factor = np.asarray(scale, dtype=np.float32)
    if factor.ndim == 2:
        factor = factor[:, None, :]
    points = centres[:, None, :] + offsets.reshape(len(centres), -1, 2) * factor
    return points.astype(np.float32)


def sigmoid(values: NDArray[np.floating]) -> Array:
    clipped = np.clip(values.astype(np.float32), -60.0, 60.0)
    return (1.0 / (1.0 + np.exp(-clipped))).astype(np.float32)


def dfl_expectation(logits: Array, bins: int = 16) -> Array:
    """(N, 4·bins) per-side distance distributions → (N, 4) expected distances in cells."""
    grouped = logits.reshape(len(logits), 4, bins).astype(np.float32)
    grouped = np.exp(grouped - grouped.max(axis=2, keepdims=True))
    grouped /= grouped.sum(axis=2, keepdims=True)
    expected: Array = np.asarray(grouped @ np.arange(bins, dtype=np.float32), dtype=np.float32)
    return expected


@dataclass(frozen=True)
class Letterboxed:
    """An image fitted into a network input: resized by ``scale``, placed at the top left."""

    canvas: ImageBGR
    scale: float


# Down to this scale a detector's input is resized bilinearly, below it by pixel area.
LINEAR_DOWN_TO = 0.55


def resize_for_detector(image: ImageBGR, width: int, height: int) -> ImageBGR:
    """``image`` resized to ``width`` × ``height`` for a detector: bilinear when enlarging and
    down to ``LINEAR_DOWN_TO``, by pixel area below. The area filter costs 5-10x as much (1000 x
    750 to 640 x 480: 4.8 against 0.6 ms; 1024 x 768: 8.2 against 0.9; a 1920 x 2250 portrait's
    1/2 decode to SCRFD's 640 px, 0.57 of it: 2.3 against 0.33). A reduced JPEG decode reaches
    the detector at 0.5-1 of its size. On faces-dev (``bench/bench_resize.py``), at every scale
    from 0.51 to 0.65, bilinear moves SCRFD's and RetinaFace's landmarks, and every embedder's
    vectors, by about half or less of what moving the photo one pixel does (median and p95;
    MobileFaceNet's and w600k_mbf's median by a sixth to a ninth). Below 0.55 single faces moved
    further than any one-pixel move did (at 0.53, under RetinaFace, a MobileFaceNet vector by
    0.33 cosine against at most 0.27), and at 0.51 the reduced decode's own test (a ~28 px face
    for RetinaFace in a 4000 x 3000 photo, tests/domain/test_analysis_images.py) moves its dlib
    vector by 0.056 against the 0.05 it allows. So the area filter stays below 0.55: RetinaFace
    on a 4000 px photo's 1/2 decode or a 1920 px one (0.51-0.53), a 4000 x 4688 portrait's 1/4
    decode for SCRFD (0.546), and large photos never reduced while decoded (PNG, WEBP)."""
    h, w = image.shape[:2]
    linear = min(width / w, height / h) >= LINEAR_DOWN_TO
    interpolation = cv2.INTER_LINEAR if linear else cv2.INTER_AREA
    return np.asarray(cv2.resize(image, (width, height), interpolation=interpolation), np.uint8)


def letterbox(
    image: ImageBGR, height: int, width: int, *, pad: int = 0, enlarge: bool = False
) -> Letterboxed:
    """``image`` resized (aspect kept) to fit ``height`` × ``width``, padded right and below.

    A smaller image is not enlarged unless ``enlarge``: a face filling a 150 px crop, blown up
    to fill the whole input, is larger than any face the detectors were trained on (SCRFD-500M
    and YOLOv5-face then miss most of faces-dev's face chips, bench/bench_detectors.py).
    """
    h, w = image.shape[:2]
    scale = min(height / h, width / w)
    if not enlarge:
        scale = min(scale, 1.0)
    new_w, new_h = max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale)))
    resized = image
    if (new_w, new_h) != (w, h):
        resized = resize_for_detector(image, new_w, new_h)
    canvas = scratch("letterbox", (height, width, 3), np.uint8)  # valid until the next one
    canvas[:new_h, :new_w] = resized
    canvas[new_h:] = pad
    canvas[:new_h, new_w:] = pad
    return Letterboxed(canvas, scale)


def to_tensor(
    canvas: ImageBGR, *, rgb: bool, mean: float | Array = 0.0, scale: float = 1.0
) -> Array:
    """(1, 3, H, W) float32 network input ``(pixel - mean) · scale`` in the network's channel
    order; ``mean`` per channel is in that order too. A scratch array of this thread: valid
    until its next call (:mod:`facerec.inference.scratch`)."""
    planes = canvas.transpose(2, 0, 1)  # a view: the one pass below writes the tensor
    if rgb:
        planes = planes[::-1]
    means = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1)
    tensor = scratch("tensor", (1, *planes.shape), np.float32)
    np.subtract(planes, means, out=tensor[0])
    if scale != 1.0:
        tensor *= np.float32(scale)
    return tensor


def top_candidates(scores: Array, conf_threshold: float) -> NDArray[np.intp]:
    """Indices of the scores at or above the threshold, best first, at most PRE_NMS_TOP."""
    keep = np.flatnonzero(scores >= conf_threshold)
    return keep[np.argsort(-scores[keep])][:PRE_NMS_TOP]


def to_detections(
    boxes: Array,
    scores: Array,
    points: Array | None,
    *,
    iou_threshold: float,
    max_faces: int,
    width: int,
    height: int,
    scale: float = 1.0,
) -> list[Detection]:
    """Candidates in network-input pixels → detections in the image's pixels, best first.

    ``scale`` is how much the image was enlarged to make the network input (letterbox), so
    coordinates are divided by it; boxes are clipped to ``width`` × ``height``.
    """
    chosen = nms(boxes, scores, iou_threshold)[:max_faces]
    faces: list[Detection] = []
    for index in chosen:
        x1, y1, x2, y2 = (float(v) / scale for v in boxes[index])
        bbox = BBox(x1, y1, x2, y2).clipped(width, height)
        if bbox.area <= 0:
            continue
        landmarks = None
        if points is not None:
            landmarks = (points[index] / np.float32(scale)).astype(np.float32)
        faces.append(Detection(bbox, float(scores[index]), landmarks))
    return faces
