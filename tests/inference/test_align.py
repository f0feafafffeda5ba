"""Face alignment: the similarity transform and the chip warp."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from facerec.inference.align import (
    ARCFACE_112,
    DLIB_150,
    similarity_transform,
    template_for,
    transform_points,
    warp_chip,
)

COLOURS = ((0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255), (255, 0, 255))


def similarity(angle_deg: float, scale: float, tx: float, ty: float) -> NDArray[np.float64]:
    a = math.radians(angle_deg)
    c, s = scale * math.cos(a), scale * math.sin(a)
    return np.array([[c, -s, tx], [s, c, ty]], dtype=np.float64)


@pytest.mark.parametrize(
    ("angle", "scale", "tx", "ty"),
    [
        (0.0, 1.0, 0.0, 0.0),
        (20.0, 1.7, 35.0, -12.0),
        (-75.0, 0.3, 400.0, 220.0),
        (180.0, 4.0, 1, 2),
    ],
)
def test_known_transform_is_recovered(angle: float, scale: float, tx: float, ty: float) -> None:
    truth = similarity(angle, scale, tx, ty)
    moved = transform_points(ARCFACE_112, truth)
    recovered = similarity_transform(ARCFACE_112, moved)
    np.testing.assert_allclose(recovered, truth, atol=1e-3)


def test_noisy_points_give_the_least_squares_fit() -> None:
    rng = np.random.default_rng(0)
    truth = similarity(12.0, 2.5, 100.0, 50.0)
    moved = transform_points(ARCFACE_112, truth) + rng.normal(0, 0.5, (5, 2)).astype(np.float32)
    recovered = similarity_transform(ARCFACE_112, moved)
    np.testing.assert_allclose(recovered, truth, atol=0.05 * 2.5 + 1.0)
    residual = np.abs(transform_points(ARCFACE_112, recovered) - moved).max()
    assert residual < 2.0


def test_mirrored_points_never_give_a_reflection() -> None:
    mirrored = ARCFACE_112.copy()
    mirrored[:, 0] = 112 - mirrored[:, 0]
    matrix = similarity_transform(ARCFACE_112, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_bad_points_are_rejected() -> None:
    with pytest.raises(ValueError, match="degenerate"):
        similarity_transform(np.ones((5, 2)), ARCFACE_112)
    with pytest.raises(ValueError, match="point arrays"):
        similarity_transform(np.ones((5, 3)), np.ones((5, 3)))
    with pytest.raises(ValueError, match="point arrays"):
        similarity_transform(np.ones((4, 2)), ARCFACE_112)


def test_templates_are_symmetric_faces() -> None:
    for template in (ARCFACE_112, DLIB_150):
        left_eye, right_eye, nose, left_mouth, right_mouth = template
        assert left_eye[0] < nose[0] < right_eye[0]
        assert left_mouth[0] < right_mouth[0]
        assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])
    np.testing.assert_allclose(template_for(224), ARCFACE_112 * 2, rtol=1e-6)


def synthetic_face(matrix: NDArray[np.float64], height: int, width: int) -> NDArray[np.uint8]:
    """Five coloured dots where ``matrix`` puts the ArcFace template, on a grey image."""
    image = np.full((height, width, 3), 90, np.uint8)
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    radius = max(2, round(2.5 * scale))
    for point, colour in zip(transform_points(ARCFACE_112, matrix), COLOURS, strict=True):
        cv2.circle(image, (round(point[0]), round(point[1])), radius, colour, -1, cv2.LINE_AA)
    return image


def dot_centre(chip: NDArray[np.uint8], colour: tuple[int, int, int]) -> NDArray[np.float64]:
    distance = np.abs(chip.astype(np.int32) - np.array(colour)).sum(axis=2)
    ys, xs = np.nonzero(distance < 200)
    assert xs.size, f"dot {colour} not in the chip"
    weights = (200 - distance[ys, xs]).astype(np.float64)
    return np.array([np.average(xs, weights=weights), np.average(ys, weights=weights)])


@pytest.mark.parametrize(
    ("angle", "scale", "size"),
    [(15.0, 1.6, 112), (-30.0, 0.8, 112), (8.0, 9.0, 112), (0.0, 2.0, 224)],
    ids=["rotated", "small-face", "large-face-shrunk-first", "chip-224"],
)
def test_chip_lands_landmarks_on_the_template(angle: float, scale: float, size: int) -> None:
    matrix = similarity(angle, scale, 60.0 + 40 * scale, 40.0 + 20 * scale)
    image = synthetic_face(matrix, round(140 * scale + 200), round(140 * scale + 200))
    landmarks = transform_points(ARCFACE_112, matrix)
    template = template_for(size)
    chip = warp_chip(image, landmarks, size, template)
    assert chip.shape == (size, size, 3)
    assert chip.dtype == np.uint8
    for point, colour in zip(template, COLOURS, strict=True):
        np.testing.assert_allclose(dot_centre(chip, colour), point, atol=1.0 * size / 112)


def test_chip_outside_the_image_is_black() -> None:
    image = np.full((50, 50, 3), 255, np.uint8)
    landmarks = ARCFACE_112 * 0.5 - 20  # a face partly left of and above the image
    chip = warp_chip(image, landmarks)
    assert chip[0, 0].tolist() == [0, 0, 0]
    assert chip.max() == 255
