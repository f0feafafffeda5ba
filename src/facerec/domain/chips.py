"""Kept face chips: the aligned chip an embedder saw, stored as PNG with its five landmarks."""

from __future__ import annotations

import numpy as np

from facerec.errors import InvalidInputError
from facerec.inference.base import AlignedChip
from facerec.storage.models import StoredChip

CHIP_FORMAT = "png"


def encode_chip(chip: AlignedChip) -> StoredChip:
    """A kept chip as PNG bytes (lossless: a re-embedding sees what the first model saw)."""
    import cv2

    ok, data = cv2.imencode(".png", chip.pixels)
    if not ok:  # pragma: no cover - a uint8 BGR array always encodes
        raise ValueError("cannot encode the face chip")
    marks = tuple((float(x), float(y)) for x, y in np.asarray(chip.landmarks).reshape(-1, 2))
    return StoredChip(bytes(data.tobytes()), CHIP_FORMAT, marks)


def decode_chip(stored: StoredChip) -> AlignedChip:
    import cv2

    buffer = np.frombuffer(stored.data, dtype=np.uint8)
    pixels = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if pixels is None:
        raise InvalidInputError("a kept face chip cannot be decoded", code="invalid_chip")
    landmarks = np.asarray(stored.landmarks, dtype=np.float32).reshape(5, 2)
    return AlignedChip(np.asarray(pixels, dtype=np.uint8), landmarks)
