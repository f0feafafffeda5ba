"""Detector inputs are built in one pass over the pixels: the same tensors, bit for bit, as the
straightforward float copy, subtraction and transposed copy."""

from __future__ import annotations

import numpy as np
import pytest

from facerec.inference.detectors.decoding import to_tensor
from facerec.inference.detectors.retinaface import MEAN_BGR, input_tensor


@pytest.mark.parametrize("shape", [(600, 512), (257, 1023), (32, 32)])
def test_retinaface_input_equals_the_straightforward_tensor(shape: tuple[int, int]) -> None:
    image = np.random.default_rng(shape[0]).integers(0, 256, (*shape, 3), np.uint8)
    height, width = shape
    padded_h, padded_w = -(-height // 32) * 32, -(-width // 32) * 32
    expected = np.zeros((3, padded_h, padded_w), np.float32)
    expected[:, :height, :width] = (image.astype(np.float32) - MEAN_BGR).transpose(2, 0, 1)
    got = input_tensor(image)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert np.array_equal(got, expected)


@pytest.mark.parametrize(
    ("rgb", "mean", "scale"),
    [
        (True, 127.5, 1.0 / 128.0),  # SCRFD
        (False, 0.0, 1.0),  # YuNet
        (True, 0.0, 1.0 / 255.0),  # YOLO
        (True, np.array([1.0, 2.0, 3.0], np.float32), 0.5),  # a mean per channel
    ],
)
def test_to_tensor_equals_the_straightforward_tensor(
    rgb: bool, mean: float | np.ndarray, scale: float
) -> None:
    canvas = np.random.default_rng(1).integers(0, 256, (640, 640, 3), np.uint8)
    pixels = canvas[:, :, ::-1] if rgb else canvas
    reference = (pixels.astype(np.float32) - mean) * np.float32(scale)
    expected = np.ascontiguousarray(reference.transpose(2, 0, 1)[None], dtype=np.float32)
    got = to_tensor(canvas, rgb=rgb, mean=mean, scale=scale)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert np.array_equal(got, expected)
