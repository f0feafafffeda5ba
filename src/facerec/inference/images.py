"""Turning client bytes into a BGR image, safely.

Order matters: size limits and the format are checked from the first bytes and the header before
any pixel is decoded, so a decompression bomb or a huge file costs nothing. Supported: JPEG, PNG,
BMP, TIFF, WEBP, recognised by content (magic bytes), never by file name.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from facerec.config import LimitSettings
from facerec.errors import (
    InvalidImageError,
    InvalidInputError,
    PayloadTooLargeError,
    UnsupportedFormatError,
)
from facerec.inference.types import ImageBGR

# Our own pixel limit is checked from the header; Pillow's warning-only guard would be redundant.
Image.MAX_IMAGE_PIXELS = None

SUPPORTED_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP")
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+/-]*)(?:;[\w=.+-]+)*;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(rb"\s+")


@dataclass(frozen=True)
class DecodedImage:
    """``width``/``height`` are the upright image's; ``pixels`` may be a reduced decode of it
    (see ``reduce_to``), ``scale_x``/``scale_y`` times smaller."""

    pixels: ImageBGR
    width: int
    height: int
    channels: int  # channels of the source image (1 gray, 3 colour, 4 with alpha)
    format: str
    exif_rotated: bool
    scale_x: float = 1.0
    scale_y: float = 1.0


def sniff_format(data: bytes) -> str | None:
    """The container format from magic bytes, or None when it is no image we know."""
    head = data[:16]
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"BM"):
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head.startswith(b"%PDF"):
        return "PDF"
    text = data[:512].lstrip().lower()
    if text.startswith(b"<?xml") or text.startswith(b"<svg") or b"<svg" in text:
        return "SVG"
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "HEIF"
    return None


def decode_base64(text: str, limits: LimitSettings) -> bytes:
    """Bytes of a base64 string, with or without a ``data:image/...;base64,`` prefix."""
    if not text or not text.strip():
        raise InvalidInputError("image_base64 is empty", code="empty_image")
    match = _DATA_URL.match(text.strip())
    payload = text.strip()[match.end() :] if match else text.strip()
    raw = _WHITESPACE.sub(b"", payload.encode("ascii", errors="replace"))
    if len(raw) * 3 // 4 > limits.max_upload_bytes:
        raise PayloadTooLargeError(
            f"image is larger than the limit of {limits.max_upload_bytes} bytes",
            code="file_too_large",
            limit_bytes=limits.max_upload_bytes,
        )
    try:
        # Accept both alphabets and missing padding; reject anything else.
        raw = raw.replace(b"-", b"+").replace(b"_", b"/")
        raw += b"=" * (-len(raw) % 4)
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInputError(
            "image_base64 is not valid base64", code="invalid_base64", reason=str(exc)
        ) from exc
    if not data:
        raise InvalidInputError("image_base64 decodes to no bytes", code="empty_image")
    return data


def decode_image(
    data: bytes, limits: LimitSettings, *, reduce_to: int | None = None
) -> DecodedImage:
    """A BGR uint8 image, upright (EXIF orientation applied), from encoded bytes.

    ``reduce_to``: the caller needs no more than this many pixels on the longer side (detection
    only). A JPEG at least twice that size is then decoded at 1/2, 1/4 or 1/8 scale by the
    codec itself, several times faster than a full decode; never below ``reduce_to``.
    """
    if not data:
        raise InvalidImageError("the image is empty", code="empty_image")
    if len(data) > limits.max_upload_bytes:
        raise PayloadTooLargeError(
            f"image is {len(data)} bytes; the limit is {limits.max_upload_bytes}",
            code="file_too_large",
            limit_bytes=limits.max_upload_bytes,
        )
    kind = sniff_format(data)
    if kind is None:
        raise InvalidImageError(
            "the bytes are not an image of a supported format",
            code="invalid_image",
            supported=list(SUPPORTED_FORMATS),
        )
    if kind not in SUPPORTED_FORMATS:
        raise UnsupportedFormatError(
            f"{kind} images are not supported",
            code="unsupported_format",
            format=kind,
            supported=list(SUPPORTED_FORMATS),
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[kind])
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(
            f"the {kind} header cannot be read", code="invalid_image", format=kind
        ) from exc
    width, height = image.size
    if width * height > limits.max_pixels:
        raise PayloadTooLargeError(
            f"image is {width}x{height} pixels; the limit is {limits.max_pixels} pixels",
            code="image_too_large",
            width=width,
            height=height,
            limit_pixels=limits.max_pixels,
        )
    if min(width, height) < limits.min_side:
        raise InvalidImageError(
            f"image is {width}x{height}; each side must be at least {limits.min_side} pixels",
            code="image_too_small",
            width=width,
            height=height,
            min_side=limits.min_side,
        )
    if reduce_to is not None and kind == "JPEG" and max(width, height) >= 2 * reduce_to:
        factor = max(width, height) / reduce_to
        image.draft(None, (math.ceil(width / factor), math.ceil(height / factor)))
    orientation = _orientation(image)
    upright_w, upright_h = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    try:
        image.load()
        upright = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidImageError(
            f"the {kind} image is truncated or corrupt", code="corrupt_image", format=kind
        ) from exc
    channels = len(image.getbands())
    pixels = to_bgr(upright)
    return DecodedImage(
        pixels=pixels,
        width=upright_w,
        height=upright_h,
        channels=channels,
        format=kind,
        exif_rotated=orientation not in (None, 1),
        scale_x=upright_w / pixels.shape[1],
        scale_y=upright_h / pixels.shape[0],
    )


def _orientation(image: Image.Image) -> int | None:
    try:
        value = image.getexif().get(0x0112)
    except Exception:  # a malformed EXIF block only means "no orientation"
        return None
    return int(value) if isinstance(value, int) else None


def to_bgr(image: Image.Image) -> ImageBGR:
    """Any Pillow mode to 8-bit BGR: 16-bit scaled down, alpha composited on white, CMYK/palette
    converted."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or array.max() > 255 else 255.0
        gray = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return _gray_to_bgr(gray)
    if mode == "F":
        gray = np.clip(np.asarray(image, dtype=np.float64), 0, 255).astype(np.uint8)
        return _gray_to_bgr(gray)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _gray_to_bgr(gray: NDArray[np.uint8]) -> ImageBGR:
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
