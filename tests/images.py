"""Test images: real public-domain photos shipped inside PyPI wheels, and generated ones."""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from PIL import Image


@lru_cache(maxsize=1)
def grace_hopper_jpeg() -> bytes:
    """matplotlib's sample photo of Grace Hopper (512x600 JPEG, one face)."""
    from matplotlib import cbook

    with open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), "rb") as handle:
        return handle.read()


def grace_hopper_rgb() -> NDArray[np.uint8]:
    return np.asarray(Image.open(io.BytesIO(grace_hopper_jpeg())).convert("RGB"))


def astronaut_rgb() -> NDArray[np.uint8]:
    """scikit-image's astronaut (Eileen Collins), 512x512 RGB, one face."""
    from skimage import data

    return np.asarray(data.astronaut(), dtype=np.uint8)


def encode(rgb: NDArray[np.uint8] | Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    image = rgb if isinstance(rgb, Image.Image) else Image.fromarray(rgb)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def astronaut_png() -> bytes:
    return encode(astronaut_rgb(), "PNG")


def composite_rgb() -> NDArray[np.uint8]:
    """Grace Hopper and the astronaut side by side on a grey canvas: two faces."""
    left, right = grace_hopper_rgb(), astronaut_rgb()
    height = max(left.shape[0], right.shape[0])
    canvas = np.full((height, left.shape[1] + right.shape[1] + 40, 3), 128, np.uint8)
    canvas[: left.shape[0], : left.shape[1]] = left
    canvas[: right.shape[0], left.shape[1] + 40 :] = right
    return canvas


def blank_png(width: int = 320, height: int = 240) -> bytes:
    return encode(np.full((height, width, 3), 200, np.uint8), "PNG")
