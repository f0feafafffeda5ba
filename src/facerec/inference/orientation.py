"""EXIF orientation: read it from the header, and make decoded pixels upright with one copy.

OpenCV's flip/transpose/rotate write the upright image in one pass (a NumPy view made contiguous
walks the source with a negative or transposed stride, several times slower on a large photo).
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from facerec.inference.types import ImageBGR

EXIF_ORIENTATION = 0x0112
# Orientations that change the pixels (1 and values outside 2..8 leave the image as it is).
ROTATING = frozenset(range(2, 9))
# Orientations that swap width and height.
TRANSPOSING = frozenset((5, 6, 7, 8))


def exif_orientation(image: Image.Image) -> int | None:
    """The orientation tag of an opened image (None: absent or unreadable)."""
    try:
        value = image.getexif().get(EXIF_ORIENTATION)
    except Exception:  # a malformed EXIF block only means "no orientation"
        return None
    return int(value) if isinstance(value, int) else None


def png_header_orientation(image: Image.Image) -> int | None:
    """The orientation of a PNG's eXIf chunk when it comes before the pixels (Pillow reads a later
    one only by decoding the whole image)."""
    raw = image.info.get("exif")
    if not isinstance(raw, bytes):
        return None
    try:
        exif = Image.Exif()
        exif.load(raw)
        value = exif.get(EXIF_ORIENTATION)
    except Exception:  # a malformed EXIF block only means "no orientation"
        return None
    return int(value) if isinstance(value, int) else None


def upright(pixels: ImageBGR, orientation: int | None) -> ImageBGR:
    """The (height, width, 3) array as ``PIL.ImageOps.exif_transpose`` would show it: a new
    contiguous array for orientations 2..8, ``pixels`` itself otherwise."""
    if orientation not in ROTATING:
        return pixels
    source = np.ascontiguousarray(pixels)
    if orientation == 2:
        out = cv2.flip(source, 1)
    elif orientation == 3:
        out = cv2.flip(source, -1)
    elif orientation == 4:
        out = cv2.flip(source, 0)
    elif orientation == 5:
        out = cv2.transpose(source)
    elif orientation == 6:
        out = cv2.rotate(source, cv2.ROTATE_90_CLOCKWISE)
    elif orientation == 7:
        out = cv2.flip(cv2.rotate(source, cv2.ROTATE_90_CLOCKWISE), 0)
    else:
        out = cv2.rotate(source, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return np.asarray(out, dtype=np.uint8)
