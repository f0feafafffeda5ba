"""Detector inputs are built in one pass over the pixels: the same tensors, bit for bit, as the
straightforward float copy, subtraction and transposed copy, also when the thread's reused
(scratch) buffer held a different photo before."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from facerec.inference.detectors.decoding import letterbox, resize_for_detector, to_tensor
from facerec.inference.detectors.retinaface import MEAN_BGR, input_tensor
from facerec.inference.scratch import MAX_BYTES, scratch, scratch_bytes


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


# --- per-thread scratch buffers: a reused buffer never leaks an earlier photo -----------------


def test_retinaface_padding_is_zero_after_a_larger_photo_in_the_same_thread() -> None:
    rng = np.random.default_rng(7)
    input_tensor(rng.integers(200, 256, (700, 900, 3), np.uint8))  # fills the buffer
    small = rng.integers(0, 256, (100, 70, 3), np.uint8)
    got = input_tensor(small)
    assert got.shape == (3, 128, 96)
    assert not got[:, 100:].any() and not got[:, :, 70:].any()
    assert np.array_equal(
        got[:, :100, :70], (small.astype(np.float32) - MEAN_BGR).transpose(2, 0, 1)
    )


@pytest.mark.parametrize("pad", [0, 114])
def test_letterbox_padding_is_rewritten_after_another_photo(pad: int) -> None:
    rng = np.random.default_rng(3)
    letterbox(rng.integers(1, 256, (640, 640, 3), np.uint8), 640, 640, pad=pad)
    wide = rng.integers(0, 256, (200, 400, 3), np.uint8)
    placed = letterbox(wide, 640, 640, pad=pad)
    assert placed.scale == 1.0
    assert np.array_equal(placed.canvas[:200, :400], wide)
    assert (placed.canvas[200:] == pad).all() and (placed.canvas[:200, 400:] == pad).all()


def test_scratch_is_reused_per_thread_and_separate_between_threads() -> None:
    first = scratch("test-slot", (4, 8), np.float32)
    again = scratch("test-slot", (2, 8), np.float32)
    assert np.shares_memory(first, again)  # the same buffer, a smaller view
    seen: list[np.ndarray] = []
    thread = threading.Thread(target=lambda: seen.append(scratch("test-slot", (4, 8), np.float32)))
    thread.start()
    thread.join()
    assert not np.shares_memory(first, seen[0])
    grown = scratch("test-slot", (64, 64), np.float32)  # larger: a new buffer, kept from now on
    assert grown.shape == (64, 64) and np.shares_memory(
        grown, scratch("test-slot", (8,), np.float32)
    )


def test_scratch_does_not_keep_arrays_over_the_limit() -> None:
    before = scratch_bytes()
    big = scratch("test-big", (MAX_BYTES // 4 + 1,), np.float32)
    assert big.nbytes > MAX_BYTES and scratch_bytes() == before
    assert not np.shares_memory(big, scratch("test-big", (MAX_BYTES // 4 + 1,), np.float32))


@pytest.mark.parametrize(
    ("source", "target", "interpolation"),
    [
        ((750, 1000), (480, 640), cv2.INTER_LINEAR),  # SCRFD on a 4000 px photo's 1/4 decode
        ((720, 960), (480, 640), cv2.INTER_LINEAR),  # a 1920 px photo's 1/2 decode
        ((1125, 960), (640, 546), cv2.INTER_LINEAR),  # a 1920 x 2250 portrait's 1/2 (0.57)
        ((1200, 900), (640, 480), cv2.INTER_AREA),  # 0.53: below the bound
        ((1500, 2000), (768, 1024), cv2.INTER_AREA),  # RetinaFace on a 4000 px photo's 1/2
        ((3000, 4000), (480, 640), cv2.INTER_AREA),  # a PNG, never reduced while decoded
        ((150, 200), (480, 640), cv2.INTER_LINEAR),  # letterbox(enlarge=True) of a face chip
    ],
)
def test_shrink_is_bilinear_only_down_to_055(
    source: tuple[int, int], target: tuple[int, int], interpolation: int
) -> None:
    image = np.random.default_rng(3).integers(0, 256, (*source, 3), np.uint8)
    expected = cv2.resize(image, target[::-1], interpolation=interpolation)
    assert np.array_equal(resize_for_detector(image, target[1], target[0]), expected)
