"""Pixels to 8-bit BGR: a JPEG straight from libjpeg-turbo, any other Pillow image in strips.

A plain JPEG (RGB or grayscale) is decoded by OpenCV's libjpeg-turbo straight into the BGR array,
at 1/2, 1/4 or 1/8 scale when asked (DCT scaling): one allocation, no Pillow image in its 4-bytes-
a-pixel layout and no RGB→BGR copy. Its pixels are bit-identical to Pillow's decode of the same
file at the same scale (tests/inference/test_images_decoding.py). Everything else (PNG, WEBP,
TIFF, BMP, CMYK JPEG, 16-bit, alpha, palette) goes through Pillow and :func:`to_bgr`, which
converts strip by strip so a mode conversion never holds a second full-size copy.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from facerec.inference.types import ImageBGR

# Conversion to BGR works on strips of about this many pixels (temporaries: ~40 bytes a pixel).
STRIP_PIXELS = 256 * 1024
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
# JPEG modes (as Pillow reads them from the header) whose colour OpenCV converts as Pillow does.
FAST_JPEG_MODES = ("RGB", "L")
_REDUCED = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


def decode_jpeg_bgr(data: bytes, scale: int, size: tuple[int, int]) -> ImageBGR | None:
    """The JPEG as stored (EXIF orientation not applied), ``scale`` times smaller, in BGR; None
    when OpenCV cannot decode it or gives another ``size`` (width, height) than the header said:
    the caller then decodes with Pillow, which explains what is wrong."""
    flag = _REDUCED.get(scale)
    if flag is None:
        return None
    buffer = np.frombuffer(data, dtype=np.uint8)
    pixels = cv2.imdecode(buffer, flag | cv2.IMREAD_IGNORE_ORIENTATION)
    if pixels is None or pixels.ndim != 3 or pixels.shape[2] != 3:
        return None
    if (pixels.shape[1], pixels.shape[0]) != size or pixels.dtype != np.uint8:
        return None
    return np.asarray(pixels, dtype=np.uint8)


def to_bgr(image: Image.Image) -> ImageBGR:
    """Any Pillow mode to 8-bit BGR: 16-bit scaled down, alpha composited on white, CMYK/palette
    converted. Works strip by strip: the only full-size allocation is the result."""
    width, height = image.size
    out = np.empty((height, width, 3), np.uint8)
    top = 255.0
    if image.mode in _SIXTEEN_BIT:
        top = 65535.0
    elif image.mode == "I":
        extrema = image.getextrema()
        top = 65535.0 if isinstance(extrema[1], (int, float)) and extrema[1] > 255 else 255.0
    rows = max(1, STRIP_PIXELS // max(1, width))
    for y in range(0, height, rows):
        strip = image.crop((0, y, width, min(height, y + rows)))
        _strip_to_bgr(strip, top, out[y : y + strip.size[1]])
    return out


def _strip_to_bgr(image: Image.Image, top: float, out: NDArray[np.uint8]) -> None:
    mode = image.mode
    if mode in _SIXTEEN_BIT or mode == "I":
        array = np.asarray(image, dtype=np.float64)
        gray = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR, dst=out)
        return
    if mode == "F":
        gray = np.clip(np.asarray(image, dtype=np.float64), 0, 255).astype(np.uint8)
        cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR, dst=out)
        return
    if mode == "L":
        cv2.cvtColor(np.asarray(image, dtype=np.uint8), cv2.COLOR_GRAY2BGR, dst=out)
        return
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.uint8)
    cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR, dst=out)
