"""Real weights: what a batched run hands each caller is what the model gives that caller alone.

Callers are lined up so that their inputs fill one batch (the batch starts only when full), and
every result is compared with the model's own single call: dlib ResNet, the ONNX embedders
(MobileFaceNet, w600k_mbf), MiniFASNet liveness and RetinaFace detection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from facerec.inference.base import FaceEmbedder, RuntimeOptions
from facerec.inference.batching import BatchPolicy
from facerec.inference.batching_models import (
    BatchedEmbedder,
    BatchedMiniFASNet,
    BatchedRetinaFace,
    batching_front,
)
from facerec.inference.detectors.retinaface import RetinaFaceDetector
from facerec.inference.embedders.dlib_resnet import DlibResNetEmbedder
from facerec.inference.embedders.onnx_embedder import (
    MOBILEFACENET_SPEC,
    W600K_MBF_SPEC,
    EmbedderSpec,
    OnnxArcFaceEmbedder,
)
from facerec.inference.liveness.minifasnet import MiniFASNetLiveness
from facerec.inference.liveness.minifasnet_pack import convert_pack
from facerec.inference.types import ImageBGR
from facerec.values import Detection
from tests.conftest import unavailable
from tests.images import astronaut_rgb, composite_rgb, grace_hopper_rgb

T = TypeVar("T")
RUNTIME = RuntimeOptions(intra_op_threads=1)


def together(calls: list[Callable[[], T]]) -> list[T]:
    """Run ``calls`` in threads at once; results in call order."""
    results: list[T | None] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    if errors:
        raise errors[0]
    return [r for r in results if r is not None]


def full_batch(size: int) -> BatchPolicy:
    """A run starts only once ``size`` inputs are in (the wait is longer than any test)."""
    return BatchPolicy(max_batch=size, max_wait_s=3600.0, max_concurrent=1)


def bgr(rgb: NDArray[np.uint8]) -> ImageBGR:
    return np.ascontiguousarray(rgb[:, :, ::-1])


@pytest.fixture(scope="module")
def detector() -> RetinaFaceDetector:
    model = RetinaFaceDetector()
    model.load(RUNTIME)
    return model


@pytest.fixture(scope="module")
def photos(detector: RetinaFaceDetector) -> list[tuple[ImageBGR, list[Detection]]]:
    """Grace Hopper (1 face), the astronaut (1) and the composite (2), with their faces."""
    result = []
    for rgb in (grace_hopper_rgb(), astronaut_rgb(), composite_rgb()):
        image = bgr(rgb)
        faces = detector.detect(image, conf_threshold=0.8, iou_threshold=0.4, max_faces=10)
        assert faces
        result.append((image, faces))
    return result


def check_embedder(inner: FaceEmbedder, photos: list[tuple[ImageBGR, list[Detection]]]) -> None:
    front = batching_front(inner, full_batch(sum(len(f) for _, f in photos)))
    assert isinstance(front, BatchedEmbedder)
    batched = together([partial(front.embed, i, f) for i, f in photos])
    assert front.batcher.stats.runs == 1 and front.batcher.stats.callers == len(photos)
    for (image, faces), rows in zip(photos, batched, strict=True):
        single = inner.embed(image, faces)
        assert rows.shape == single.shape and rows.dtype == np.float32
        # Measured identical to the bit on this machine; allow float noise of other BLAS builds.
        np.testing.assert_allclose(rows, single, rtol=0, atol=1e-6)


def test_dlib_batched_equals_single(photos: list[tuple[ImageBGR, list[Detection]]]) -> None:
    embedder = DlibResNetEmbedder()
    embedder.load(RUNTIME)
    check_embedder(embedder, photos)


@pytest.mark.shared_models
@pytest.mark.parametrize("spec", [MOBILEFACENET_SPEC, W600K_MBF_SPEC], ids=lambda s: s.name)
def test_onnx_embedders_batched_equal_single(
    spec: EmbedderSpec, shared_models: Path, photos: list[tuple[ImageBGR, list[Detection]]]
) -> None:
    assert spec in (MOBILEFACENET_SPEC, W600K_MBF_SPEC)
    files = {
        MOBILEFACENET_SPEC: shared_models / "mobilefacenet" / "mobilefacenet_foamliu_opset18.onnx",
        W600K_MBF_SPEC: shared_models / "arcface" / "w600k_mbf_fp32_from_int8.onnx",
    }
    path = files[spec]
    if not path.is_file():
        unavailable(str(path), "see ../shared/models/README.md")
    embedder = OnnxArcFaceEmbedder(spec, shared_models, model_path=path)
    embedder.load(RUNTIME)
    check_embedder(embedder, photos)


@pytest.fixture(scope="module")
def liveness(
    shared_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MiniFASNetLiveness]:
    source = shared_models / "minifasnet"
    if not source.is_dir():
        unavailable(f"MiniFASNet weights in {source}", "see ../shared/models/README.md")
    target = tmp_path_factory.mktemp("models") / "minifasnet"
    convert_pack(source, target)
    model = MiniFASNetLiveness(target)
    model.load(RUNTIME)
    yield model
    model.unload()


@pytest.mark.shared_models
def test_minifasnet_batched_equals_single(
    liveness: MiniFASNetLiveness, photos: list[tuple[ImageBGR, list[Detection]]]
) -> None:
    front = batching_front(liveness, full_batch(sum(len(f) for _, f in photos)))
    assert isinstance(front, BatchedMiniFASNet)
    batched = together([partial(front.score, i, f) for i, f in photos])
    assert front.batcher.stats.runs == 1
    for (image, faces), scores in zip(photos, batched, strict=True):
        single = liveness.score(image, faces)
        assert len(scores) == len(single)
        for got, want in zip(scores, single, strict=True):
            assert got.live_score == pytest.approx(want.live_score, abs=1e-6)
            assert got.per_model.keys() == want.per_model.keys()


def test_retinaface_batches_same_size_images_with_single_results(
    detector: RetinaFaceDetector,
) -> None:
    grace = bgr(grace_hopper_rgb())
    height, width = grace.shape[:2]
    astronaut = bgr(np.asarray(cv2.resize(astronaut_rgb(), (width, height)), dtype=np.uint8))
    odd = bgr(grace_hopper_rgb()[: height - 40])  # pads to another tensor size
    images = [grace, astronaut, bgr(grace_hopper_rgb()[:, ::-1]), odd]
    front = batching_front(detector, full_batch(3))
    assert isinstance(front, BatchedRetinaFace)
    detect = partial(front.detect, conf_threshold=0.5, iou_threshold=0.4, max_faces=10)
    batched = together([partial(detect, i) for i in images[:3]])
    assert front.batcher.stats.runs == 1 and front.batcher.stats.largest == 3
    alone = batching_front(detector, BatchPolicy(max_wait_s=0.0))
    assert alone is not None
    assert isinstance(alone, BatchedRetinaFace)
    batched.append(alone.detect(images[3], conf_threshold=0.5, iou_threshold=0.4, max_faces=10))
    for image, got in zip(images, batched, strict=True):
        want = detector.detect(image, conf_threshold=0.5, iou_threshold=0.4, max_faces=10)
        assert len(got) == len(want) > 0
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(
                [a.bbox.x1, a.bbox.y1, a.bbox.x2, a.bbox.y2, a.score],
                [b.bbox.x1, b.bbox.y1, b.bbox.x2, b.bbox.y2, b.score],
                atol=1e-3,
            )
            assert a.landmarks is not None and b.landmarks is not None
            np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-3)
