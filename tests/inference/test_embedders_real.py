"""Real weights: the same person under the calibrated threshold, different people above it.

Faces come from the real RetinaFace detector. Grace Hopper (matplotlib) against an altered copy of
herself (cropped, mirrored, darkened, JPEG re-encoded) and against the astronaut Eileen Collins
(scikit-image).
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageEnhance, ImageOps

from facerec.inference.base import FaceEmbedder, RuntimeOptions
from facerec.inference.detectors.retinaface import RetinaFaceDetector
from facerec.inference.embedders.dlib_resnet import DlibResNetEmbedder
from facerec.inference.embedders.onnx_embedder import MOBILEFACENET_SPEC, OnnxArcFaceEmbedder
from facerec.inference.types import ImageBGR
from facerec.values import Detection
from tests.images import astronaut_rgb, composite_rgb, grace_hopper_rgb


def altered_grace_hopper() -> NDArray[np.uint8]:
    image = Image.fromarray(grace_hopper_rgb())
    image = image.crop((40, 30, 480, 560))
    image = ImageOps.mirror(image)
    image = ImageEnhance.Brightness(image).enhance(0.75)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=55)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def bgr(rgb: NDArray[np.uint8]) -> ImageBGR:
    return np.ascontiguousarray(rgb[:, :, ::-1])


@lru_cache(maxsize=1)
def detector() -> RetinaFaceDetector:
    model = RetinaFaceDetector()
    model.load(RuntimeOptions())
    return model


def faces_in(image: ImageBGR) -> list[Detection]:
    found = detector().detect(image, conf_threshold=0.8, iou_threshold=0.4, max_faces=10)
    assert found, "the detector found no face"
    return found


def embed_largest(embedder: FaceEmbedder, rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    image = bgr(rgb)
    face = max(faces_in(image), key=lambda f: f.bbox.area)
    vectors = embedder.embed(image, [face])
    assert vectors.shape == (1, embedder.dim)
    assert np.isfinite(vectors).all()
    vector: NDArray[np.float32] = vectors[0]
    return vector


def check_same_and_different(embedder: FaceEmbedder) -> tuple[float, float]:
    grace = embed_largest(embedder, grace_hopper_rgb())
    altered = embed_largest(embedder, altered_grace_hopper())
    astronaut = embed_largest(embedder, astronaut_rgb())
    same = embedder.distance(grace, altered)
    different = embedder.distance(grace, astronaut)
    threshold = embedder.distance_threshold
    # Measured: dlib 0.14 / 0.69, MobileFaceNet 0.04 / 0.89 (thresholds 0.6 and 0.64).
    assert same < 0.5 * threshold, f"same person at distance {same:.3f}"
    assert different > threshold, f"different people at distance {different:.3f}"
    assert embedder.similarity(same) > 0.9
    assert embedder.similarity(different) < 0.4
    return same, different


def check_batch_matches_single(embedder: FaceEmbedder) -> None:
    image = bgr(composite_rgb())
    faces = faces_in(image)
    assert len(faces) == 2
    batch = embedder.embed(image, faces)
    singles = np.stack([embedder.embed(image, [face])[0] for face in faces])
    np.testing.assert_allclose(batch, singles, atol=1e-4)
    assert embedder.distance(batch[0], batch[1]) > embedder.distance_threshold


@pytest.fixture(scope="module")
def dlib_embedder() -> DlibResNetEmbedder:
    embedder = DlibResNetEmbedder()
    embedder.load(RuntimeOptions())
    return embedder


def test_dlib_same_person_under_threshold_different_above(
    dlib_embedder: DlibResNetEmbedder,
) -> None:
    check_same_and_different(dlib_embedder)


def test_dlib_with_the_shape_predictor_alignment() -> None:
    embedder = DlibResNetEmbedder(alignment="shape_predictor")
    embedder.load(RuntimeOptions())
    check_same_and_different(embedder)


def test_dlib_batch_equals_one_by_one(dlib_embedder: DlibResNetEmbedder) -> None:
    check_batch_matches_single(dlib_embedder)


@pytest.fixture(scope="module")
def mobilefacenet(shared_models: Path) -> OnnxArcFaceEmbedder:
    embedder = OnnxArcFaceEmbedder(MOBILEFACENET_SPEC, shared_models)
    assert embedder.is_installed(), embedder.not_installed_reason()
    embedder.load(RuntimeOptions())
    return embedder


@pytest.mark.shared_models
def test_mobilefacenet_same_person_under_threshold_different_above(
    mobilefacenet: OnnxArcFaceEmbedder,
) -> None:
    check_same_and_different(mobilefacenet)


@pytest.mark.shared_models
def test_mobilefacenet_batch_equals_one_by_one(mobilefacenet: OnnxArcFaceEmbedder) -> None:
    check_batch_matches_single(mobilefacenet)


@pytest.mark.shared_models
def test_mobilefacenet_without_mirror_sum(
    mobilefacenet: OnnxArcFaceEmbedder, shared_models: Path
) -> None:
    """models.mirror_sum=false: one network run per face, still the same person under the
    threshold and different people above it, close to the mirror-sum vector."""
    single = OnnxArcFaceEmbedder(MOBILEFACENET_SPEC, shared_models, mirror_sum=False)
    single.load(RuntimeOptions())
    check_same_and_different(single)
    summed = embed_largest(mobilefacenet, grace_hopper_rgb())
    alone = embed_largest(single, grace_hopper_rgb())
    assert 0.0 < single.distance(summed, alone) < 0.1
    assert single.space != mobilefacenet.space
