"""The bounds an image is held to before any pixel is decoded: its pixel count and side from the
header, the pixels of all the images of one request, and the peak memory its decode will take
(the decoder's own buffers, Pillow's image in its native mode, our BGR array, the EXIF rotation
copy), against ``limits.max_request_memory_mb``."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from PIL import Image, PngImagePlugin

from facerec.config import LimitSettings
from facerec.errors import InvalidImageError, PayloadTooLargeError
from facerec.inference.image_formats import SUPPORTED_FORMATS, sniff_format, webp_size
from facerec.inference.image_pixels import STRIP_PIXELS

# Our own pixel and memory limits are checked from the header; Pillow's warning-only guard would
# be redundant. Compressed PNG text chunks are a bomb of their own (Pillow allows 64 MiB of them).
Image.MAX_IMAGE_PIXELS = None
PngImagePlugin.MAX_TEXT_MEMORY = 4 * 1024 * 1024

MIB = 1024 * 1024
# Copies of the encoded image a request holds while it is decoded (the body, the JSON text of its
# base64, the decoded bytes): they come out of the same per-request budget as the pixels.
ENCODED_COPIES = 4
# What the strips' temporaries and the decoder's fixed buffers add, whatever the image size.
FIXED_SLACK = 40 * STRIP_PIXELS
# Bytes a pixel takes in Pillow's memory, by mode (libImaging stores 3 channels in 4 bytes).
_NATIVE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
# libwebp's two RGBA canvases, the frame Pillow keeps as bytes, its image, our BGR array.
WEBP_BYTES_PER_PIXEL = 4 + 4 + 4 + 4 + 3


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


def check_size(width: int, height: int, limits: LimitSettings) -> None:
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


def check_cost(
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
