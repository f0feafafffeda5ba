"""With ``memory.detector_arena_keep_pixels`` set, RetinaFace hands the arena growth of a large run
back (onnxruntime's arena otherwise keeps the largest run's activations for the process's life),
and only for large runs; unset, it never does. With ``memory.detector_run_pixels`` the runs of
all threads hold at most that many input pixels at once (the arena keeps what the runs in
progress together needed), and a batch over it runs in parts with the same outputs."""

from __future__ import annotations

import threading
import time
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


class ConcurrencyProbe:
    """A session that records how many input pixels are being run at once."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.batches: list[int] = []

    def run(self, names: Any, feed: dict[str, NDArray[np.float32]], options: Any = None) -> Any:
        batch = feed["input"]
        pixels = batch.shape[0] * batch.shape[2] * batch.shape[3]
        with self.lock:
            self.running += pixels
            self.most = max(self.most, self.running)
            self.batches.append(batch.shape[0])
        try:
            time.sleep(0.02)  # long enough for the other threads' runs to overlap
            return self.inner.run(names, feed, options)
        finally:
            with self.lock:
                self.running -= pixels


def loaded_session() -> Any:
    detector = RetinaFaceDetector()
    detector.load(RuntimeOptions())
    return detector.session


def run_in_threads(detector: RetinaFaceDetector, tensors: list[NDArray[np.float32]]) -> None:
    threads = [threading.Thread(target=detector.run, args=(t,)) for t in tensors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_runs_of_all_threads_stay_within_the_pixel_budget() -> None:
    probe = ConcurrencyProbe(loaded_session())
    budget = 1024 * 1024
    detector = RetinaFaceDetector(session=probe, run_pixels=budget)
    large = np.zeros((1, 3, 768, 1024), np.float32)  # two of them pass the budget
    run_in_threads(detector, [large, large, large])
    assert probe.most == 768 * 1024
    frames = np.zeros((1, 3, 480, 640), np.float32)  # three fit: they still run together
    probe.most = 0
    run_in_threads(detector, [frames, frames, frames])
    assert probe.most == 3 * 480 * 640
    # A run larger than the whole budget runs alone; without a budget nothing waits.
    unbounded = RetinaFaceDetector(session=probe, run_pixels=0)
    probe.most = 0
    run_in_threads(unbounded, [large, large, large])
    assert probe.most == 3 * 768 * 1024


def test_a_batch_over_the_budget_runs_in_parts_with_the_same_outputs() -> None:
    session = loaded_session()
    probe = ConcurrencyProbe(session)
    rng = np.random.default_rng(5)
    batch = rng.normal(0, 50, (5, 3, 480, 640)).astype(np.float32)
    whole = RetinaFaceDetector(session=session).run(batch)
    parted = RetinaFaceDetector(session=probe, run_pixels=2 * 480 * 640).run(batch)
    assert probe.batches == [2, 2, 1]
    for a, b in zip(whole, parted, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
