"""Turning client bytes into a BGR image, safely and within a memory bound.

Order matters: size limits and the format are checked from the first bytes and the header before
any pixel is decoded, so a decompression bomb or a huge file costs nothing. The header also gives
the memory the decode will really take (:func:`decode_cost`: the decoder's own buffers, Pillow's
image in its native mode, our BGR array, the EXIF rotation copy); an image whose cost does not fit
``limits.max_request_memory_mb`` is refused with 413 ``image_too_large`` before anything is
allocated. Conversion to BGR runs in strips, so mode conversions (16-bit, alpha, palette, CMYK)
never hold a second full-size copy. Supported: JPEG, PNG, BMP, TIFF, WEBP, recognised by content
(magic bytes), never by file name.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import math
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, PngImagePlugin

from facerec.config import LimitSettings
from facerec.errors import (
    InvalidImageError,
    InvalidInputError,
    PayloadTooLargeError,
    UnsupportedFormatError,
)
from facerec.inference.types import ImageBGR

logger = logging.getLogger(__name__)

# Our own pixel and memory limits are checked from the header; Pillow's warning-only guard would
# be redundant. Compressed PNG text chunks are a bomb of their own (Pillow allows 64 MiB of them).
Image.MAX_IMAGE_PIXELS = None
PngImagePlugin.MAX_TEXT_MEMORY = 4 * 1024 * 1024

SUPPORTED_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP")
MIB = 1024 * 1024
# Copies of the encoded image a request holds while it is decoded (the body, the JSON text of its
# base64, the decoded bytes): they come out of the same per-request budget as the pixels.
ENCODED_COPIES = 4
# Conversion to BGR works on strips of about this many pixels (temporaries: ~40 bytes a pixel).
STRIP_PIXELS = 256 * 1024
# What the strips' temporaries and the decoder's fixed buffers add, whatever the image size.
FIXED_SLACK = 40 * STRIP_PIXELS
# Bytes a pixel takes in Pillow's memory, by mode (libImaging stores 3 channels in 4 bytes).
_NATIVE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
# libwebp's two RGBA canvases, the frame Pillow keeps as bytes, its image, our BGR array.
WEBP_BYTES_PER_PIXEL = 4 + 4 + 4 + 4 + 3
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+/-]*)(?:;[\w=.+-]+)*;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(rb"\s+")
_URLSAFE = bytes.maketrans(b"-_", b"+/")


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
    """Bytes of a base64 string, with or without a ``data:image/...;base64,`` prefix. At most one
    full-size copy of the text is alive at a time."""
    if not text or not text.strip():
        raise InvalidInputError("image_base64 is empty", code="empty_image")
    match = _DATA_URL.match(text.lstrip()[:256])
    start = len(text) - len(text.lstrip()) + (match.end() if match else 0)
    raw = text[start:].encode("ascii", errors="replace")
    if _WHITESPACE.search(raw):
        raw = _WHITESPACE.sub(b"", raw)
    if len(raw) * 3 // 4 > limits.max_upload_bytes:
        raise PayloadTooLargeError(
            f"image is larger than the limit of {limits.max_upload_bytes} bytes",
            code="file_too_large",
            limit_bytes=limits.max_upload_bytes,
        )
    try:
        # Accept both alphabets and missing padding; reject anything else.
        if b"-" in raw or b"_" in raw:
            raw = raw.translate(_URLSAFE)
        if len(raw) % 4:
            raw += b"=" * (-len(raw) % 4)
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInputError(
            "image_base64 is not valid base64", code="invalid_base64", reason=str(exc)
        ) from exc
    if not data:
        raise InvalidInputError("image_base64 decodes to no bytes", code="empty_image")
    return data


def webp_size(data: bytes) -> tuple[int, int] | None:
    """The canvas of a WEBP from its first chunk; libwebp allocates it when the file is opened,
    so it is checked before Pillow sees the file."""
    chunk = data[12:16]
    try:
        if chunk == b"VP8X":
            w = int.from_bytes(data[24:27], "little") + 1
            h = int.from_bytes(data[27:30], "little") + 1
            return w, h
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8 ":
            w, h = struct.unpack("<HH", data[26:30])
            return w & 0x3FFF, h & 0x3FFF
    except (struct.error, ValueError):
        return None
    return None


def header_pixels(data: bytes) -> int:
    """Pixels an encoded image declares in its header (0 when it cannot be read: decoding it
    will say why). Reads the header only."""
    kind = sniff_format(data)
    if kind not in SUPPORTED_FORMATS:
        return 0
    if kind == "WEBP":
        size = webp_size(data)
        return size[0] * size[1] if size else 0
    try:
        with Image.open(io.BytesIO(data), formats=[kind]) as image:
            return int(image.size[0]) * int(image.size[1])
    except MemoryError:
        raise
    except Exception:
        return 0


def check_request_pixels(images: Sequence[bytes], limits: LimitSettings) -> None:
    """413 ``too_many_pixels`` when the images of one request declare more pixels in all than
    ``limits.max_pixels_per_request``: checked from the headers, before any is decoded."""
    total = sum(header_pixels(data) for data in images)
    if total > limits.max_pixels_per_request:
        raise PayloadTooLargeError(
            f"the images of this request have {total} pixels in all; "
            f"the limit is {limits.max_pixels_per_request}",
            code="too_many_pixels",
            pixels=total,
            limit_pixels=limits.max_pixels_per_request,
        )


def decode_budget(data: bytes, limits: LimitSettings) -> int:
    """Bytes the pixels of this image may take: the request's memory bound less the copies of
    the encoded image the request holds."""
    return limits.max_request_memory_mb * MIB - ENCODED_COPIES * len(data)


def decode_cost(image: Image.Image, kind: str, *, full_size: tuple[int, int], rotated: bool) -> int:
    """Peak bytes that decoding ``image`` (opened, header read, draft applied) to BGR will
    allocate, from its header. ``full_size``: the size before any draft (JPEG's coefficient
    buffer is full-size whatever the output scale)."""
    width, height = image.size
    pixels = width * height
    native = pixels * _NATIVE_BYTES.get(image.mode, 4)
    bgr = pixels * 3
    tile = getattr(image, "tile", None) or []  # ImageFile only
    codec = str(tile[0].codec_name) if tile else ""
    held = 0  # decoder buffers alive until the Pillow image is closed
    loading = 0  # decoder buffers alive only while loading
    if kind == "JPEG" and image.info.get("progressive"):
        # libjpeg keeps every DCT coefficient (2 bytes) of every component of a progressive JPEG.
        components = int(getattr(image, "layers", 3) or 3)
        loading = 2 * components * full_size[0] * full_size[1]
    elif kind == "WEBP":
        # libwebp's two RGBA canvases and the decoded frame Pillow keeps as bytes.
        held = (WEBP_BYTES_PER_PIXEL - 7) * pixels
    elif kind == "TIFF":
        # libtiff reads whole strips/tiles (a strip may be the whole image) or RGBA blocks.
        bits = image.tag_v2.get(258, (8,)) if hasattr(image, "tag_v2") else (8,)
        samples = len(bits) if isinstance(bits, tuple) else 1
        depth = max(bits) if isinstance(bits, tuple) and bits else 8
        loading = max(4, math.ceil(samples * int(depth) / 8)) * pixels
    elif kind == "BMP" and codec == "bmp_rle":
        loading = 2 * pixels  # the RLE decoder builds the image as bytes, then copies it
    peak = max(native + held + loading, native + held + bgr, 2 * bgr if rotated else bgr)
    return peak + FIXED_SLACK


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
        _check_size(*declared, limits)
        _check_cost(
            WEBP_BYTES_PER_PIXEL * declared[0] * declared[1], declared, "RGBA", data, limits
        )
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
    _check_size(width, height, limits)
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
    _check_cost(cost, (width, height), image.mode, data, limits)
    channels = len(image.getbands())
    mode = image.mode
    try:
        image.load()
        pixels = to_bgr(image)
        if kind == "PNG" and not rotated:
            orientation = _orientation(image)
            rotated = orientation in _ORIENT
            if rotated:
                cost = decode_cost(image, kind, full_size=(width, height), rotated=True)
    except MemoryError:
        raise
    except Exception as exc:  # truncated data, bad chunks, codec errors
        raise InvalidImageError(
            f"the {kind} image is truncated or corrupt", code="corrupt_image", format=kind
        ) from exc
    image.close()  # the native pixels go before the rotation copy is made
    if rotated:
        _check_cost(cost, (width, height), mode, data, limits)  # a PNG's late eXIf
        pixels = np.ascontiguousarray(_ORIENT[orientation or 1](pixels))
    upright_w, upright_h = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
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


def _check_size(width: int, height: int, limits: LimitSettings) -> None:
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


def _check_cost(
    cost: int, size: tuple[int, int], mode: str, data: bytes, limits: LimitSettings
) -> None:
    budget = decode_budget(data, limits)
    if cost > budget:
        raise PayloadTooLargeError(
            f"decoding this {size[0]}x{size[1]} {mode} image needs {cost} bytes; "
            f"the limit is {max(budget, 0)} (limits.max_request_memory_mb)",
            code="image_too_large",
            width=size[0],
            height=size[1],
            mode=mode,
            decode_bytes=cost,
            limit_bytes=max(budget, 0),
        )


def _orientation(image: Image.Image) -> int | None:
    try:
        value = image.getexif().get(0x0112)
    except Exception:  # a malformed EXIF block only means "no orientation"
        return None
    return int(value) if isinstance(value, int) else None


def _png_header_orientation(image: Image.Image) -> int | None:
    raw = image.info.get("exif")
    if not isinstance(raw, bytes):
        return None
    try:
        exif = Image.Exif()
        exif.load(raw)
        value = exif.get(0x0112)
    except Exception:  # a malformed EXIF block only means "no orientation"
        return None
    return int(value) if isinstance(value, int) else None


# EXIF orientation → the view that makes a (height, width, 3) array upright (as
# ``PIL.ImageOps.exif_transpose``); 1 and values outside 2..8 leave the image as it is.
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


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
        out[y : y + strip.size[1]] = _strip_to_bgr(strip, top)
    return out


def _strip_to_bgr(image: Image.Image, top: float) -> NDArray[np.uint8]:
    mode = image.mode
    if mode in _SIXTEEN_BIT or mode == "I":
        array = np.asarray(image, dtype=np.float64)
        return _gray_to_bgr(np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if mode == "F":
        return _gray_to_bgr(np.clip(np.asarray(image, dtype=np.float64), 0, 255).astype(np.uint8))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return rgb[:, :, ::-1]


def _gray_to_bgr(gray: NDArray[np.uint8]) -> NDArray[np.uint8]:
    return np.repeat(gray[:, :, None], 3, axis=2)
