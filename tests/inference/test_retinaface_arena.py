"""With ``memory.detector_arena_keep_pixels`` set, RetinaFace hands the arena growth of a large run
back (onnxruntime's arena otherwise keeps the largest run's activations for the process's life),
and only for large runs; unset, it never does."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from facerec.inference.base import RuntimeOptions
from facerec.inference.detectors.retinaface import RetinaFaceDetector
from facerec.values import BBox
from tests.images import grace_hopper_rgb

ARENA_KEEP_PIXELS = 640 * 640


class RecordingSession:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.options: list[Any] = []

    def run(self, names: Any, feed: dict[str, NDArray[np.float32]], options: Any = None) -> Any:
        self.options.append(options)
        return self.inner.run(names, feed, options)


def test_only_runs_larger_than_the_kept_size_release_their_arena() -> None:
    detector = RetinaFaceDetector()
    detector.load(RuntimeOptions())
    session = RecordingSession(detector.session)
    releasing = RetinaFaceDetector(session=session, arena_keep_pixels=ARENA_KEEP_PIXELS)
    keeping = RetinaFaceDetector(session=session)
    small = np.zeros((1, 3, 480, 640), np.float32)
    large = np.zeros((1, 3, 1024, 768), np.float32)
    batch = np.zeros((2, 3, 480, 640), np.float32)  # a batch counts all of its images
    assert small.shape[2] * small.shape[3] <= ARENA_KEEP_PIXELS < large.shape[2] * large.shape[3]
    for tensor in (small, large, batch):
        releasing.run(tensor)
        keeping.run(tensor)  # the default: kept
    released = [options is not None for options in session.options]
    assert released == [False, False, True, False, True, False]
    config = session.options[2].get_run_config_entry("memory.enable_memory_arena_shrinkage")
    assert config == "cpu:0"


def test_a_released_run_detects_the_same_faces() -> None:
    detector = RetinaFaceDetector(arena_keep_pixels=ARENA_KEEP_PIXELS)
    detector.load(RuntimeOptions())
    image = np.ascontiguousarray(grace_hopper_rgb()[:, :, ::-1])  # 512 x 600: below the size
    big = np.ascontiguousarray(np.pad(image, ((0, 424), (0, 512), (0, 0))))  # 1024 x 1024
    kept = detector.detect(image, conf_threshold=0.5, iou_threshold=0.4, max_faces=5)
    released = detector.detect(big, conf_threshold=0.5, iou_threshold=0.4, max_faces=5)
    again = detector.detect(big, conf_threshold=0.5, iou_threshold=0.4, max_faces=5)
    assert len(kept) == len(released) == len(again) == 1
    np.testing.assert_allclose(corners(released[0].bbox), corners(kept[0].bbox), atol=1.0)
    assert corners(released[0].bbox) == corners(again[0].bbox)


def corners(box: BBox) -> tuple[float, float, float, float]:
    return box.x1, box.y1, box.x2, box.y2
