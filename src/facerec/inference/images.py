"""Turning client bytes into a BGR image, safely and within a memory bound.

Order matters: size limits and the format are checked from the first bytes and the header before
any pixel is decoded, so a decompression bomb or a huge file costs nothing. The header also gives
the memory the decode will really take (:func:`decode_cost`: the decoder's own buffers, Pillow's
image in its native mode, our BGR array, the EXIF rotation copy); an image whose cost does not fit
``limits.max_request_memory_mb`` is refused with 413 ``image_too_large`` before anything is
allocated. A plain JPEG is decoded once, at the scale the caller needs, straight into BGR
(:mod:`.image_pixels`); other formats decode with Pillow and convert to BGR in strips, so mode
conversions (16-bit, alpha, palette, CMYK) never hold a second full-size copy. EXIF orientation
is applied with one copy (:mod:`.orientation`). Supported: JPEG, PNG, BMP, TIFF, WEBP,
recognised by content (magic bytes, :mod:`.image_formats`), never by file name.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass

from PIL import Image

from facerec.config import LimitSettings
from facerec.errors import InvalidImageError, PayloadTooLargeError, UnsupportedFormatError
from facerec.inference.image_formats import (
    SUPPORTED_FORMATS,
    decode_base64,
    jpeg_complete,
    sniff_format,
    webp_size,
)
from facerec.inference.image_limits import (
    WEBP_BYTES_PER_PIXEL,
    check_cost,
    check_request_pixels,
    check_size,
    decode_budget,
    decode_cost,
    header_pixels,
)
from facerec.inference.image_pixels import FAST_JPEG_MODES, decode_jpeg_bgr, to_bgr
from facerec.inference.orientation import ROTATING as _ORIENT
from facerec.inference.orientation import TRANSPOSING, upright
from facerec.inference.orientation import exif_orientation as _orientation
from facerec.inference.orientation import png_header_orientation as _png_header_orientation
from facerec.inference.types import ImageBGR

__all__ = [
    "SUPPORTED_FORMATS",
    "DecodedImage",
    "check_request_pixels",
    "decode_base64",
    "decode_budget",
    "decode_cost",
    "decode_image",
    "header_pixels",
    "sniff_format",
    "to_bgr",
    "webp_size",
]

logger = logging.getLogger(__name__)


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
    if kind == "WEBP" and (declared := webp_size(data)) is not None:
        check_size(*declared, limits)
        check_cost(WEBP_BYTES_PER_PIXEL * declared[0] * declared[1], declared, "RGBA", data, limits)
    image = _open(data, kind)
    try:
        return _decode_opened(image, data, kind, limits, reduce_to)
    finally:
        image.close()


def _open(data: bytes, kind: str) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=[kind])
    except MemoryError:
        raise
    except Exception as exc:  # Pillow raises many kinds on malformed headers
        raise InvalidImageError(
            f"the {kind} header cannot be read", code="invalid_image", format=kind
        ) from exc


def _decode_opened(
    image: Image.Image, data: bytes, kind: str, limits: LimitSettings, reduce_to: int | None
) -> DecodedImage:
    width, height = image.size
    check_size(width, height, limits)
    if reduce_to is not None and kind == "JPEG" and max(width, height) >= 2 * reduce_to:
        factor = max(width, height) / reduce_to
        image.draft(None, (math.ceil(width / factor), math.ceil(height / factor)))
    # Pillow decodes a whole PNG to look for an eXIf chunk after the pixels: only one before them
    # is read now; a later one is checked once the pixels are in, before the rotation copy.
    orientation = _png_header_orientation(image) if kind == "PNG" else _orientation(image)
    rotated = orientation in _ORIENT
    try:
        cost = decode_cost(image, kind, full_size=(width, height), rotated=rotated)
    except MemoryError:
        raise
    except Exception as exc:
        raise InvalidImageError(
            f"the {kind} header cannot be read", code="invalid_image", format=kind
        ) from exc
    check_cost(cost, (width, height), image.mode, data, limits)
    channels = len(image.getbands())
    mode = image.mode
    pixels = None
    if kind == "JPEG" and mode in FAST_JPEG_MODES and jpeg_complete(data):
        pixels = decode_jpeg_bgr(data, _draft_scale(image), image.size)
    if pixels is None:
        pixels, orientation, cost = _pillow_pixels(image, kind, orientation, cost)
    rotated = orientation in _ORIENT
    image.close()  # the native pixels go before the rotation copy is made
    if rotated:
        check_cost(cost, (width, height), mode, data, limits)  # a PNG's late eXIf
        pixels = upright(pixels, orientation)
    upright_w, upright_h = (height, width) if orientation in TRANSPOSING else (width, height)
    return DecodedImage(
        pixels=pixels,
        width=upright_w,
        height=upright_h,
        channels=channels,
        format=kind,
        exif_rotated=rotated,
        scale_x=upright_w / pixels.shape[1],
        scale_y=upright_h / pixels.shape[0],
    )


def _draft_scale(image: Image.Image) -> int:
    """The DCT scale (1, 2, 4, 8) a JPEG's ``draft`` chose; 1 without one."""
    config = getattr(image, "decoderconfig", ()) or ()
    return int(config[0]) if config and isinstance(config[0], int) else 1


def _pillow_pixels(
    image: Image.Image, kind: str, orientation: int | None, cost: int
) -> tuple[ImageBGR, int | None, int]:
    """Pillow's decode in BGR, the orientation (a PNG's eXIf after the pixels is read now) and
    the decode cost, with the rotation copy when a late eXIf rotates."""
    full_size = image.size
    try:
        image.load()
        pixels = to_bgr(image)
        if kind == "PNG" and orientation not in _ORIENT:
            orientation = _orientation(image)
            if orientation in _ORIENT:
                cost = decode_cost(image, kind, full_size=full_size, rotated=True)
    except MemoryError:
        raise
    except Exception as exc:  # truncated data, bad chunks, codec errors
        raise InvalidImageError(
            f"the {kind} image is truncated or corrupt", code="corrupt_image", format=kind
        ) from exc
    return pixels, orientation, cost
