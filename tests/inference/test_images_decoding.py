"""The fast decoding paths give the pixels the straightforward Pillow path gives.

JPEG goes straight from libjpeg-turbo into BGR (at 1/2, 1/4, 1/8 scale when reduced) and EXIF
orientation is applied with OpenCV; each is compared with Pillow's decode, ``ImageOps.
exif_transpose`` and an RGB→BGR copy, for every orientation and for PNG and WEBP too.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageOps

from facerec.config import LimitSettings
from facerec.errors import InvalidImageError
from facerec.inference.image_formats import jpeg_complete
from facerec.inference.image_pixels import to_bgr
from facerec.inference.images import decode_image
from facerec.inference.orientation import upright
from tests.images import encode, grace_hopper_rgb

LIMITS = LimitSettings()


def photo(width: int = 1001, height: int = 777) -> NDArray[np.uint8]:
    """Grace Hopper stretched to an awkward size (not a multiple of 8 or 16)."""
    return np.asarray(Image.fromarray(grace_hopper_rgb()).resize((width, height)))


def pillow_reference(data: bytes, reduce_to: int | None = None) -> NDArray[np.uint8]:
    """The straightforward path: Pillow decodes (draft when reduced), transposes, converts."""
    image = Image.open(io.BytesIO(data))
    width, height = image.size
    if reduce_to is not None and image.format == "JPEG" and max(width, height) >= 2 * reduce_to:
        factor = max(width, height) / reduce_to
        image.draft(None, (int(np.ceil(width / factor)), int(np.ceil(height / factor))))
    oriented = ImageOps.exif_transpose(image)
    assert oriented is not None
    rgba = oriented.convert("RGBA")
    flat = Image.alpha_composite(Image.new("RGBA", rgba.size, (255,) * 4), rgba).convert("RGB")
    return np.ascontiguousarray(np.asarray(flat)[:, :, ::-1])


def with_orientation(
    rgb: NDArray[np.uint8], fmt: str, orientation: int, **options: object
) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(rgb, fmt, exif=exif.tobytes(), **options)


@pytest.mark.parametrize("reduce_to", [None, 480, 240, 120])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_jpeg_is_bit_identical_to_pillow_at_every_dct_scale(
    mode: str, reduce_to: int | None
) -> None:
    data = encode(Image.fromarray(photo()).convert(mode), "JPEG", quality=90)
    decoded = decode_image(data, LIMITS, reduce_to=reduce_to)
    expected = pillow_reference(data, reduce_to)
    assert decoded.pixels.shape == expected.shape
    assert np.array_equal(decoded.pixels, expected)
    assert (decoded.width, decoded.height) == (1001, 777)
    assert decoded.scale_x == pytest.approx(1001 / expected.shape[1])
    assert decoded.channels == (1 if mode == "L" else 3)


def test_progressive_jpeg_and_trailing_bytes_take_the_fast_path() -> None:
    data = encode(photo(), "JPEG", quality=85, progressive=True) + b"trailing bytes"
    assert jpeg_complete(data)
    assert np.array_equal(decode_image(data, LIMITS).pixels, pillow_reference(data))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_every_exif_orientation_matches_exif_transpose(fmt: str, orientation: int) -> None:
    options: dict[str, object] = {"lossless": True} if fmt == "WEBP" else {}
    data = with_orientation(photo(301, 203), fmt, orientation, **options)
    decoded = decode_image(data, LIMITS)
    expected = pillow_reference(data)
    assert np.array_equal(decoded.pixels, expected)
    assert (decoded.width, decoded.height) == (expected.shape[1], expected.shape[0])
    assert decoded.exif_rotated == (orientation != 1)


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
def test_reduced_jpeg_with_orientation_reports_the_upright_scale(orientation: int) -> None:
    data = with_orientation(photo(2400, 1000), "JPEG", orientation, quality=90)
    decoded = decode_image(data, LIMITS, reduce_to=600)
    expected = pillow_reference(data, 600)
    assert np.array_equal(decoded.pixels, expected)
    assert (decoded.width, decoded.height) == (1000, 2400)
    assert decoded.pixels.shape[:2] == (600, 250)
    assert (decoded.scale_x, decoded.scale_y) == (4.0, 4.0)


@pytest.mark.parametrize("orientation", range(10))
def test_upright_equals_the_numpy_views(orientation: int) -> None:
    a = np.random.default_rng(orientation).integers(0, 255, (7, 5, 3), np.uint8)
    views = {
        2: a[:, ::-1],
        3: a[::-1, ::-1],
        4: a[::-1],
        5: a.transpose(1, 0, 2),
        6: np.rot90(a, -1),
        7: a[::-1, ::-1].transpose(1, 0, 2),
        8: np.rot90(a, 1),
    }
    assert np.array_equal(upright(a, orientation), views.get(orientation, a))


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA", "LA", "CMYK", "I;16"])
def test_strip_conversion_of_every_mode_matches_pillow(mode: str) -> None:
    rgb = photo(613, 701)  # several strips
    if mode == "I;16":
        image = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
        expected = np.repeat(rgb[..., :1], 3, axis=2)
    else:
        image = Image.fromarray(rgb).convert(mode)
        rgba = image.convert("RGBA")
        flat = Image.alpha_composite(Image.new("RGBA", rgba.size, (255,) * 4), rgba)
        expected = np.asarray(flat.convert("RGB"))[:, :, ::-1]
    assert np.array_equal(to_bgr(image), expected)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_png_and_webp_match_pillow(fmt: str) -> None:
    rgb = photo(640, 480)
    for image in (Image.fromarray(rgb), Image.fromarray(rgb).convert("RGBA")):
        data = encode(image, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
        assert np.array_equal(decode_image(data, LIMITS).pixels, pillow_reference(data))


def test_cmyk_jpeg_goes_through_pillow() -> None:
    data = encode(Image.fromarray(photo()).convert("CMYK"), "JPEG", quality=90)
    assert np.array_equal(decode_image(data, LIMITS).pixels, pillow_reference(data))


def test_truncated_jpeg_is_corrupt_not_grey() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    whole = encode(photo(), "JPEG", quality=90, exif=exif.tobytes())
    truncated = whole[: len(whole) * 2 // 3]
    assert not jpeg_complete(truncated)
    with pytest.raises(InvalidImageError) as caught:
        decode_image(truncated, LIMITS)
    assert caught.value.code == "corrupt_image"
