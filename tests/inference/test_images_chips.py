"""Face chips are cut from the region around the face only: the same chip as warping the whole
photo (the straightforward path, kept here as the reference), whatever the photo's size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from facerec.inference.align import (
    ARCFACE_112,
    DLIB_150,
    Affine,
    Points,
    chip_scale,
    mirror_detection,
    mirrored_faces,
    similarity_transform,
    warp_chip,
)
from facerec.inference.embedders.dlib_resnet import CHIP_SIZE, DlibResNetEmbedder
from facerec.values import BBox, Detection
from tests.images import grace_hopper_rgb

# Grace Hopper's RetinaFace landmarks in the 512x600 photo.
GRACE_MARKS = np.array(
    [[203.6, 240.4], [297.0, 238.2], [250.7, 294.9], [212.6, 345.5], [289.8, 343.4]], np.float32
)


def whole_image_chip(
    image: NDArray[np.uint8], landmarks: NDArray[np.float32], size: int, template: Points
) -> NDArray[np.uint8]:
    """The straightforward path: shrink the whole image by the whole factor, then warp."""
    matrix: Affine = similarity_transform(landmarks, template)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    source = image
    if scale < 0.5 and (factor := int(1.0 / (2.0 * scale))) > 1:
        height, width = image.shape[:2]
        new_w, new_h = max(1, round(width / factor)), max(1, round(height / factor))
        source = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
        sx, sy = new_w / width, new_h / height
        # chip = M · p, p = (q + 0.5) / s - 0.5 for a pixel q of the small image.
        inner = np.array([[1 / sx, 0, 0.5 / sx - 0.5], [0, 1 / sy, 0.5 / sy - 0.5]])
        matrix = np.hstack(
            [matrix[:, :2] @ inner[:, :2], (matrix[:, :2] @ inner[:, 2:]) + matrix[:, 2:]]
        )
    chip = cv2.warpAffine(source, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
    return np.asarray(chip, np.uint8)


def scaled_photo(width: int) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
    rgb = grace_hopper_rgb()
    factor = width / rgb.shape[1]
    height = round(rgb.shape[0] * factor)
    big = np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR))
    return np.ascontiguousarray(big[:, :, ::-1]), GRACE_MARKS * np.float32(factor)


@pytest.mark.parametrize("width", [512, 1920, 4000, 4001])
@pytest.mark.parametrize(("size", "template"), [(112, ARCFACE_112), (150, DLIB_150)])
def test_region_chip_equals_whole_image_chip(width: int, size: int, template: Points) -> None:
    image, marks = scaled_photo(width)
    got = warp_chip(image, marks, size, template)
    expected = whole_image_chip(image, marks, size, template)
    diff = np.abs(got.astype(int) - expected)
    scale = chip_scale(marks, template)
    factor = max(1, int(1.0 / (2.0 * scale))) if scale < 0.5 else 1
    if image.shape[0] % factor == 0 and image.shape[1] % factor == 0:
        # The same blocks averaged; only OpenCV's 1/32-pixel fixed-point warp rounds apart.
        assert diff.max() <= 2 and diff.mean() < 0.1
    assert diff.mean() < 1.0


@pytest.mark.parametrize("shift", [(-150, 0), (0, -200), (300, 350)])
def test_chip_past_the_image_edge_is_black_as_before(shift: tuple[int, int]) -> None:
    image, marks = scaled_photo(512)
    moved = marks + np.array(shift, np.float32)
    got = warp_chip(image, moved, 112, ARCFACE_112)
    expected = whole_image_chip(image, moved, 112, ARCFACE_112)
    assert np.array_equal(got == 0, expected == 0)  # the same part lies outside: black
    assert np.abs(got.astype(int) - expected).max() <= 2


def test_chip_wholly_outside_the_image_is_black() -> None:
    image, marks = scaled_photo(512)
    chip = warp_chip(image, marks + np.float32(5000), 112, ARCFACE_112)
    assert chip.shape == (112, 112, 3) and not chip.any()


def test_dlib_landmark_chip_swaps_only_the_chip_channels() -> None:
    image, marks = scaled_photo(1920)
    embedder = DlibResNetEmbedder()
    face = Detection(BBox(500, 700, 1300, 1700), 0.99, marks)
    (chip,) = embedder.chips(image, [face])
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    assert np.array_equal(chip, warp_chip(rgb, marks, CHIP_SIZE, DLIB_150))


@pytest.mark.parametrize("width", [512, 1920])
def test_mirrored_region_gives_the_whole_mirror_images_chip(width: int) -> None:
    image, marks = scaled_photo(width)
    face = Detection(BBox(*(marks.min(0) - 40), *(marks.max(0) + 40)), 0.99, marks)
    region, (flipped,) = mirrored_faces(image, [face])
    assert region.shape[1] < image.shape[1] or width == 512
    whole = np.ascontiguousarray(image[:, ::-1])
    expected = mirror_detection(face, image.shape[1])
    assert flipped.landmarks is not None and expected.landmarks is not None
    got = warp_chip(region, flipped.landmarks, 150, DLIB_150)
    reference = warp_chip(whole, expected.landmarks, 150, DLIB_150)
    assert np.abs(got.astype(int) - reference).mean() < 1.0
